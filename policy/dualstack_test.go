package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// worldDual is world with an IPv6 address on every container
// (fd10:244:<node>::<n>, n in the IPv4 address's last digits) but x/b, which has IPv4 only, and y/c, which has
// IPv6 only.
func worldDual() Input {
	in := world()
	for i := range in.Endpoints {
		ep := &in.Endpoints[i]
		v4 := ep.IP.As4()
		ep.IPv6 = netip.AddrFrom16([16]byte{0xfd, 0x10, 0x02, 0x44, 0, v4[2], 14: 0, 15: v4[3]/10<<4 | v4[3]%10})
		switch ep.Namespace + "/" + ep.Name {
		case "x/b":
			ep.IPv6 = netip.Addr{}
		case "y/c":
			ep.IP = netip.Addr{}
		}
	}
	return in
}

var outsiders6 = []netip.Addr{netip.MustParseAddr("2001:db8::7"), netip.MustParseAddr("fd10:244:2::200"), netip.MustParseAddr("fe80::1")}

// checkDualAgainstReference compiles for both nodes and compares every
// probe between every pair of addresses of the same family with
// Reachable.
func checkDualAgainstReference(t *testing.T, in Input) {
	t.Helper()
	rs := map[string]RuleSet{}
	for _, node := range []string{"n1", "n2"} {
		n := in
		n.Node = node
		r, err := Compile(n)
		if err != nil {
			t.Fatalf("compile for %s: %v", node, err)
		}
		checkDisjoint(t, r)
		rs[node] = r
	}
	addrs := append(slices.Clone(outsiders), outsiders6...)
	for _, ep := range in.Endpoints {
		addrs = append(addrs, ep.Addrs()...)
	}
	bad := 0
	for _, src := range addrs {
		for _, dst := range addrs {
			if src == dst || src.Is4() != dst.Is4() {
				continue
			}
			for _, p := range probes {
				want := Reachable(in, src, dst, p.proto, p.port)
				got := rs["n1"].Allows(src, dst, p.proto, p.port) && rs["n2"].Allows(src, dst, p.proto, p.port)
				if got != want {
					bad++
					if bad <= 10 {
						t.Errorf("%s -> %s proto %d port %d: compiled %v, reference %v", src, dst, p.proto, p.port, got, want)
					}
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d probes differ", bad)
	}
}

// IPv6 cases beside compileCases (which run on the dual-stack world too).
var compileCases6 = []struct{ name, yaml string }{
	{"IPv6 ipBlock with except", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: \"fd10:244::/32\", except: [\"fd10:244:1::/64\", \"fd10:244:2::11/128\"]}}]}]}"},
	{"both families' ipBlocks, ports", np + "metadata: {name: d, namespace: \"y\"}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: \"fd10:244:2::/64\"}}, {ipBlock: {cidr: 10.244.1.0/24}}], ports: [{port: 80}, {protocol: UDP, port: 81}]}]}"},
	{"egress to all IPv6 but the cluster", np + "metadata: {name: d, namespace: z}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: \"::/0\", except: [\"fd10:244::/32\"]}}]}, {to: [{podSelector: {matchLabels: {pod: a}}, namespaceSelector: {}}], ports: [{port: 81, protocol: UDP}]}]}"},
	{"IPv4 ipBlock only: IPv6 peers nothing", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}"},
	{"overlapping IPv6 blocks and pods", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress], ingress: [{from: [{ipBlock: {cidr: \"fd10:244:1::/64\", except: [\"fd10:244:1::10/127\"]}}], ports: [{port: 80}]}, {from: [{namespaceSelector: {matchLabels: {ns: \"y\"}}}], ports: [{port: 79, endPort: 81}]}, {from: [{ipBlock: {cidr: \"fd10:244:1::12/128\"}}]}], egress: [{to: [{ipBlock: {cidr: \"::/1\"}}]}]}"},
}

// TestCompileDualStackMatchesReference: every policy case, on containers
// with both families, one family each, compiled and checked in both.
func TestCompileDualStackMatchesReference(t *testing.T) {
	for _, tc := range append(compileCases, compileCases6...) {
		t.Run(tc.name, func(t *testing.T) {
			in := worldDual()
			if tc.yaml != "" {
				in.Policies = mustParse(t, tc.yaml)
			}
			checkDualAgainstReference(t, in)
		})
	}
}

// TestCompileDenyAllIsolatesIPv6: a container with an IPv6 address under
// deny-all is isolated over IPv6 as over IPv4: its class holds both its
// addresses and allows nothing of either family.
func TestCompileDenyAllIsolatesIPv6(t *testing.T) {
	in := worldDual()
	in.Policies = mustParse(t, np+"metadata: {name: d, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}")
	rs, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	// x/a (10.244.1.10, fd10:244:1::10) and x/c on n1.
	if len(rs.Ingress) != 1 || fmt.Sprint(rs.Ingress[0].Pods) != "[10.244.1.10 10.244.1.12 fd10:244:1::10 fd10:244:1::12]" {
		t.Fatalf("ingress classes %+v", rs.Ingress)
	}
	for _, peer := range outsiders6 {
		for _, p := range probes {
			if rs.Allows(peer, netip.MustParseAddr("fd10:244:1::10"), p.proto, p.port) {
				t.Errorf("%s -> x/a over IPv6 %v allowed under deny-all", peer, p)
			}
			if rs.Allows(netip.MustParseAddr("fd10:244:1::12"), peer, p.proto, p.port) {
				t.Errorf("x/c -> %s over IPv6 %v allowed under deny-all", peer, p)
			}
		}
	}
}

// TestCompileFailsClosedInIPv6: a namespace that fails closed (a policy
// that does not validate) isolates its containers' IPv6 addresses too, an
// IPv6-only container's among them.
func TestCompileFailsClosedInIPv6(t *testing.T) {
	in := worldDual()
	in.Node = "n1"
	in.FailClosed = []string{"y"}
	rs, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	any6 := netip.MustParseAddr("2001:db8::7")
	var checked int
	for _, ep := range in.Endpoints {
		if ep.Node != "n1" || !ep.IPv6.IsValid() {
			continue
		}
		checked++
		open := rs.Allows(any6, ep.IPv6, ProtoTCP, 80) || rs.Allows(ep.IPv6, any6, ProtoTCP, 80)
		if ep.Namespace == "y" && open {
			t.Errorf("%s/%s %s open in a namespace that fails closed", ep.Namespace, ep.Name, ep.IPv6)
		}
		if ep.Namespace != "y" && !open {
			t.Errorf("%s/%s %s closed, want open", ep.Namespace, ep.Name, ep.IPv6)
		}
	}
	if checked < 3 {
		t.Fatalf("checked %d containers", checked)
	}
}

func TestSourcesCarryBothFamilies(t *testing.T) {
	in := Input{Node: "n", Endpoints: []Endpoint{
		{IP: netip.MustParseAddr("10.244.1.2"), IPv6: netip.MustParseAddr("fd10:244:1::2"), Namespace: "x", Node: "n", HostIf: "v1"},
		{IPv6: netip.MustParseAddr("fd10:244:1::3"), Namespace: "x", Node: "n", HostIf: "v2"},
		{IP: netip.MustParseAddr("fd10:244:1::4"), Namespace: "x", Node: "n", HostIf: "v3"}, // IPv6 given as IP
		{IP: netip.MustParseAddr("::ffff:10.244.1.5"), Namespace: "x", Node: "n", HostIf: "v4"},
	}}
	rs, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(rs.Sources); got != "[{v1 10.244.1.2 fd10:244:1::2} {v2 invalid IP fd10:244:1::3} {v3 invalid IP fd10:244:1::4} {v4 10.244.1.5 invalid IP}]" {
		t.Fatalf("sources %s", got)
	}
}

func TestIPBlockRanges6(t *testing.T) {
	got := ipBlockRanges6(&networkingv1.IPBlock{CIDR: "fd10:244::/32", Except: []string{"fd10:244::/48", "fd10:244:ffff:ffff::/64", "fd10:244:1::5/128"}})
	want := "[fd10:244:1::-fd10:244:1::4 fd10:244:1::6-fd10:244:ffff:fffe:ffff:ffff:ffff:ffff]"
	if fmt.Sprint(got) != want {
		t.Fatalf("ranges %v, want %s", got, want)
	}
	if r := ipBlockRanges6(&networkingv1.IPBlock{CIDR: "::/0"}); fmt.Sprint(r) != "[::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]" {
		t.Fatalf("::/0: %v", r)
	}
	if r := ipBlockRanges6(&networkingv1.IPBlock{CIDR: "10.0.0.0/8"}); r != nil {
		t.Fatalf("IPv4 block: %v", r)
	}
}

// TestCompileRandomDualStackPolicies: random policy sets with peers of
// both families over the dual-stack world (fixed seed).
func TestCompileRandomDualStackPolicies(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 6))
	blocks := []networkingv1.IPBlock{
		{CIDR: "fd10:244::/32"}, {CIDR: "fd10:244:1::/64", Except: []string{"fd10:244:1::10/127"}},
		{CIDR: "::/0", Except: []string{"fd10:244:2::/64"}}, {CIDR: "fd10:244:2::13/128"},
		{CIDR: "10.244.0.0/16", Except: []string{"10.244.1.10/31"}}, {CIDR: "0.0.0.0/0"},
	}
	peers := func() []networkingv1.NetworkPolicyPeer {
		var out []networkingv1.NetworkPolicyPeer
		for range r.IntN(3) {
			switch r.IntN(3) {
			case 0:
				b := blocks[r.IntN(len(blocks))]
				out = append(out, networkingv1.NetworkPolicyPeer{IPBlock: &b})
			case 1:
				out = append(out, networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"pod": []string{"a", "b", "c"}[r.IntN(3)]}}, NamespaceSelector: &metav1.LabelSelector{}})
			default:
				out = append(out, networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"ns": []string{"x", "y", "z"}[r.IntN(3)]}}})
			}
		}
		return out
	}
	ports := func() []networkingv1.NetworkPolicyPort {
		var out []networkingv1.NetworkPolicyPort
		for range r.IntN(3) {
			proto := []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP}[r.IntN(2)]
			v := intstr.FromInt32(int32(79 + r.IntN(3)))
			out = append(out, networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &v})
		}
		return out
	}
	for iter := range 100 {
		in := worldDual()
		for k := range 1 + r.IntN(3) {
			p := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", k), Namespace: []string{"x", "y", "z"}[r.IntN(3)]}}
			if r.IntN(2) == 0 {
				p.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"pod": []string{"a", "b", "c"}[r.IntN(3)]}}
			}
			for range r.IntN(3) {
				p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: peers(), Ports: ports()})
			}
			for range r.IntN(3) {
				p.Spec.Egress = append(p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: peers(), Ports: ports()})
			}
			if r.IntN(2) == 0 {
				p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
			}
			in.Policies = append(in.Policies, p)
		}
		t.Run(fmt.Sprint(iter), func(t *testing.T) { checkDualAgainstReference(t, in) })
		if t.Failed() {
			return
		}
	}
}
