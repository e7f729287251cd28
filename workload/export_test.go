package workload

import "context"

// ApplyPoliciesWithHook is ApplyPolicies with afterRead run after each read
// of the stored policies, before the write.
func (s *Store) ApplyPoliciesWithHook(ctx context.Context, policies []Policy, afterRead func()) ([]PolicyOutcome, error) {
	return s.applyPolicies(ctx, policies, afterRead)
}
