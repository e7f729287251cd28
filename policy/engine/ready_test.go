package engine

import (
	"context"
	"testing"

	"github.com/weftnet/weft/policy"
	"github.com/weftnet/weft/workload"
)

type nopInstaller struct{}

func (nopInstaller) Apply(policy.RuleSet) error        { return nil }
func (nopInstaller) Changed() (string, error)          { return "", nil }
func (nopInstaller) Drops() (policy.DropCounts, error) { return policy.DropCounts{}, nil }

// Once WaitApplied returns, the engine's status says rules are in force:
// weftd sends READY=1 when WaitApplied returns and /readyz reads InForce
// and Status, so they must agree (e2e TestReadyAndMetrics saw READY=1 and
// then /readyz "network policy not in force yet": the wait was woken
// before the applied count moved).
func TestWaitAppliedAgreesWithStatus(t *testing.T) {
	for i := range 2000 {
		p := New(Options{Node: "192.0.2.1", Enforcer: nopInstaller{}, EnableBridgeFiltering: func() error { return nil }})
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := p.ApplyView(workload.View{Revision: 7}); err != nil {
				t.Error(err)
			}
		}()
		if err := p.WaitApplied(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !p.InForce() {
			t.Fatalf("round %d: WaitApplied returned, InForce false", i)
		}
		if s := p.Status(); s.Applied == 0 || s.Revision != 7 {
			t.Fatalf("round %d: WaitApplied returned, status %+v: want applied 1, revision 7", i, s)
		}
		<-done
	}
}
