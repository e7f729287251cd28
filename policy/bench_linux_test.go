package policy

import (
	"fmt"
	"os"
	"testing"

	"github.com/weftnet/weft/testbed"
)

// BenchmarkApply: compile and install one node's rules (one nftables
// transaction replacing the table) in a fresh namespace.
func BenchmarkApply(b *testing.B) {
	if err := testbed.CheckRoot(); err != nil {
		b.Fatal(err)
	}
	n, err := testbed.NewNS("wpolb-")
	if err != nil {
		b.Fatal(err)
	}
	defer n.Delete()
	f, err := os.Open(n.Path())
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	e := NewEnforcer(EnforcerOptions{NetNS: int(f.Fd())})
	for _, size := range []struct{ endpoints, policies int }{{200, 50}, {1000, 50}} {
		in := SyntheticWorld(size.endpoints, size.policies, 2)
		b.Run(fmt.Sprintf("endpoints=%d/policies=%d", size.endpoints, size.policies), func(b *testing.B) {
			for b.Loop() {
				rs, err := Compile(in)
				if err != nil {
					b.Fatal(err)
				}
				if err := e.Apply(rs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
