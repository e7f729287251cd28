//go:build !unit

package policy

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
	networkingv1 "k8s.io/api/networking/v1"

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

// BenchmarkApplyPeersTimesPorts: compile and install a policy of 2,000
// ipBlock peers and 1,000 ports (issue 25 item 2), reporting the kernel's
// set elements and the process's peak RSS.
func BenchmarkApplyPeersTimesPorts(b *testing.B) {
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
	in := SyntheticWorld(200, 0, 2)
	in.Policies = []networkingv1.NetworkPolicy{PeersTimesPorts("ns0", 2000, 1000, nil)}
	var elems int
	for b.Loop() {
		rs, err := Compile(in)
		if err != nil {
			b.Fatal(err)
		}
		elems = 0
		for _, c := range rs.Ingress {
			elems += c.Elements()
		}
		if err := e.Apply(rs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(elems), "elements")
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "maxRSS-MB")
	}
}
