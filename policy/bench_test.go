package policy

import (
	"fmt"
	"testing"
)

// BenchmarkCompile: one node's rule set from 1,000 endpoints on two nodes
// and 50 policies (what weftd does on every change, before the kernel).
func BenchmarkCompile(b *testing.B) {
	for _, size := range []struct{ endpoints, policies int }{{200, 50}, {1000, 50}} {
		in := SyntheticWorld(size.endpoints, size.policies, 2)
		b.Run(fmt.Sprintf("endpoints=%d/policies=%d", size.endpoints, size.policies), func(b *testing.B) {
			var rs RuleSet
			for b.Loop() {
				var err error
				if rs, err = Compile(in); err != nil {
					b.Fatal(err)
				}
			}
			in4, out4 := rs.Pods()
			b.ReportMetric(float64(len(rs.Ingress)+len(rs.Egress)), "classes")
			b.ReportMetric(float64(in4+out4), "isolated")
			b.ReportMetric(float64(elements(rs)), "elements")
		})
	}
}

func elements(rs RuleSet) int {
	n := 0
	for _, c := range append(append([]Class{}, rs.Ingress...), rs.Egress...) {
		n += len(c.Any) + len(c.Ports) + len(c.Pods)
	}
	return n
}

func TestSyntheticWorldCompiles(t *testing.T) {
	in := SyntheticWorld(1000, 50, 2)
	rs, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	checkDisjoint(t, rs)
	in4, out4 := rs.Pods()
	if in4 == 0 || out4 == 0 || in4 > 500 || out4 > 500 {
		t.Fatalf("isolated %d/%d of node0's 500", in4, out4)
	}
	seen := map[string]bool{}
	for _, ep := range in.Endpoints {
		if seen[ep.IP.String()] {
			t.Fatalf("duplicate address %s", ep.IP)
		}
		seen[ep.IP.String()] = true
	}
}
