package subnet

import "context"

// KeepLeaseWithHooks is KeepLease with test hooks: afterRead runs after
// each read of the lease key, beforeWatch before each watch of it opens.
func (m *Manager) KeepLeaseWithHooks(ctx context.Context, cfg *Config, lease Lease, onRenew func(Lease), afterRead, beforeWatch func()) error {
	return m.keepLease(ctx, cfg, lease, onRenew, nil, keepHooks{afterRead: afterRead, beforeWatch: beforeWatch})
}
