package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// world is the upstream conformance shape: namespaces x, y, z with pods
// a, b, c, over two nodes, plus two addresses outside the cluster.
func world() Input {
	in := Input{
		Namespaces: []Namespace{
			{Name: "x", Labels: map[string]string{"ns": "x", "tier": "front"}},
			{Name: "y", Labels: map[string]string{"ns": "y", "tier": "back"}},
			{Name: "z", Labels: map[string]string{"ns": "z"}},
		},
		Node: "n1",
	}
	for i, ns := range []string{"x", "y", "z"} {
		for j, pod := range []string{"a", "b", "c"} {
			node := "n1"
			if (i*3+j)%2 == 1 {
				node = "n2"
			}
			in.Endpoints = append(in.Endpoints, Endpoint{
				IP:        netip.AddrFrom4([4]byte{10, 244, byte(1 + (i*3+j)%2), byte(10 + i*3 + j)}),
				Namespace: ns, Name: pod, Node: node,
				Labels: map[string]string{"pod": pod, "app": "web"},
			})
		}
	}
	return in
}

var outsiders = []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("10.244.2.200")}

type probe struct {
	proto uint8
	port  uint16
}

var probes = []probe{{ProtoTCP, 80}, {ProtoTCP, 81}, {ProtoUDP, 80}, {ProtoUDP, 81}, {ProtoSCTP, 80}, {0, 0}, {ProtoTCP, 8080}}

// checkAgainstReference compiles in for both nodes and compares every probe
// between every pair of addresses with Reachable.
func checkAgainstReference(t *testing.T, in Input) {
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
	addrs := append([]netip.Addr{}, outsiders...)
	for _, ep := range in.Endpoints {
		addrs = append(addrs, ep.IP)
	}
	bad := 0
	for _, src := range addrs {
		for _, dst := range addrs {
			if src == dst {
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

func checkDisjoint(t *testing.T, rs RuleSet) {
	t.Helper()
	for _, classes := range [][]Class{rs.Ingress, rs.Egress} {
		seen := map[netip.Addr]bool{}
		for _, c := range classes {
			for _, p := range c.Pods {
				if seen[p] {
					t.Errorf("pod %s in two classes", p)
				}
				seen[p] = true
			}
			// Any ranges and every group's peers: sorted, disjoint, and no
			// address in two of them.
			all := slices.Clone(c.Any)
			for _, g := range c.Ports {
				if len(g.Peers) == 0 || len(g.Ports) == 0 {
					t.Errorf("empty port group %+v", g)
				}
				for i, r := range g.Peers {
					if i > 0 && !g.Peers[i-1].Last.Next().Less(r.First) {
						t.Errorf("group peers overlap, touch or unsorted: %v %v", g.Peers[i-1], r)
					}
				}
				for i, r := range g.Ports {
					if r.Last < r.First || (i > 0 && g.Ports[i-1].Protocol == r.Protocol && g.Ports[i-1].Last >= r.First) {
						t.Errorf("group ports overlap or inverted: %+v", g.Ports)
					}
				}
				all = append(all, g.Peers...)
			}
			slices.SortFunc(all, func(a, b IPRange) int { return a.First.Compare(b.First) })
			for i, a := range all {
				if a.Last.Less(a.First) {
					t.Errorf("inverted range %v", a)
				}
				if i > 0 && !all[i-1].Last.Less(a.First) {
					t.Errorf("peer ranges of Any and groups overlap: %v %v", all[i-1], a)
				}
			}
		}
	}
}

func mustParse(t *testing.T, yaml string) []networkingv1.NetworkPolicy {
	t.Helper()
	nps, err := ParseManifests([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return nps
}

const np = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"

// The policy cases, as manifests.
var compileCases = []struct{ name, yaml string }{
	{"no policy", ""},
	{"deny all ingress", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress]}"},
	{"deny all egress", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, policyTypes: [Egress]}"},
	{"allow from same namespace", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, ingress: [{from: [{podSelector: {}}]}]}"},
	{"from namespace by label", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: \"y\"}}}]}]}"},
	{"pod AND namespace", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: \"y\"}}, podSelector: {matchLabels: {pod: b}}}]}]}"},
	{"pod OR namespace", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: \"y\"}}}, {podSelector: {matchLabels: {pod: b}}}]}]}"},
	{"ipBlock with except", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.244.0.0/16, except: [10.244.1.0/24, 10.244.2.16/32]}}]}]}"},
	{"a port", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, ingress: [{ports: [{port: 80}]}]}"},
	{"udp port", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, ingress: [{ports: [{port: 81, protocol: UDP}]}]}"},
	{"port range", np + "metadata: {name: d, namespace: \"y\"}\nspec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}}], ports: [{port: 79, endPort: 80}, {protocol: UDP, port: 81, endPort: 9000}]}]}"},
	{"egress to one namespace", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}}]}]}"},
	{"union of two policies", np + "metadata: {name: d1, namespace: \"y\"}\nspec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: x}}}], ports: [{port: 80}]}]}\n---\n" +
		np + "metadata: {name: d2, namespace: \"y\"}\nspec: {podSelector: {matchLabels: {pod: b}}, ingress: [{from: [{podSelector: {}}]}, {ports: [{protocol: UDP}]}]}"},
	{"policy on one pod", np + "metadata: {name: d, namespace: z}\nspec: {podSelector: {matchLabels: {pod: c}}, policyTypes: [Ingress, Egress]}"},
	{"matchExpressions", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {matchExpressions: [{key: pod, operator: NotIn, values: [a]}]}, ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: tier, operator: Exists}]}, podSelector: {matchExpressions: [{key: pod, operator: In, values: [a, c]}]}}]}]}"},
	{"egress ipBlock and ports", np + "metadata: {name: d, namespace: z}\nspec: {podSelector: {}, egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.244.1.0/24]}}], ports: [{protocol: TCP}]}, {to: [{podSelector: {matchLabels: {pod: a}}, namespaceSelector: {}}]}]}"},
	{"ingress and egress everywhere", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress], ingress: [{}], egress: [{ports: [{port: 81, protocol: UDP}]}]}\n---\n" +
		np + "metadata: {name: d, namespace: \"y\"}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 10.244.1.0/24}}]}]}"},
	{"ipv6 ipBlock matches nothing", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: \"2001:db8::/32\"}}]}]}"},
}

func TestCompileMatchesReference(t *testing.T) {
	for _, tc := range compileCases {
		t.Run(tc.name, func(t *testing.T) {
			in := world()
			if tc.yaml != "" {
				in.Policies = mustParse(t, tc.yaml)
			}
			checkAgainstReference(t, in)
		})
	}
}

func TestCompileShapes(t *testing.T) {
	in := world()
	in.Policies = mustParse(t, compileCases[1].yaml) // deny all ingress in x
	rs, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	// x/a (10.244.1.10) and x/c (10.244.1.12) run on n1; x/b on n2.
	if len(rs.Ingress) != 1 || len(rs.Egress) != 0 {
		t.Fatalf("classes %d/%d, want 1/0", len(rs.Ingress), len(rs.Egress))
	}
	c := rs.Ingress[0]
	if fmt.Sprint(c.Pods) != "[10.244.1.10 10.244.1.12]" || len(c.Any) != 0 || len(c.Ports) != 0 {
		t.Fatalf("class %+v", c)
	}

	in.Policies = mustParse(t, compileCases[10].yaml) // port range in y, from every namespace
	in.Node = "n2"
	rs, err = Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Ingress) != 1 {
		t.Fatalf("classes %d, want 1", len(rs.Ingress))
	}
	// All nine pods are peers; they are 10.244.1.10-18 and 10.244.2.11-17 in
	// two runs (every other address): nine peer ranges in one group with
	// TCP 79-80 and UDP 81-9000 (not nine times two).
	got := rs.Ingress[0].Ports
	if len(got) != 1 || len(got[0].Peers) != 9 || len(got[0].Ports) != 2 ||
		got[0].Ports[0] != (PortRange{ProtoTCP, 79, 80}) || got[0].Ports[1] != (PortRange{ProtoUDP, 81, 9000}) {
		t.Fatalf("port groups %+v", got)
	}
}

func TestCompileMergesAdjacentPeers(t *testing.T) {
	in := Input{Node: "n"}
	for i := range 200 {
		in.Endpoints = append(in.Endpoints, Endpoint{IP: netip.AddrFrom4([4]byte{10, 244, 0, byte(i + 2)}), Namespace: "x", Node: "n"})
	}
	in.Policies = mustParse(t, np+"metadata: {name: d, namespace: x}\nspec: {podSelector: {}, ingress: [{from: [{podSelector: {}}]}]}")
	rs, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Ingress) != 1 || len(rs.Ingress[0].Pods) != 200 || len(rs.Ingress[0].Any) != 1 {
		t.Fatalf("want 1 class of 200 pods with one peer range, got %+v", rs.Ingress)
	}
	if r := rs.Ingress[0].Any[0]; r.String() != "10.244.0.2-10.244.0.201" {
		t.Fatalf("range %s", r)
	}
}

// A policy that does not validate (a foreign writer's: weftctl refuses
// it) is left out, named in Rejected, and its namespace fails closed: its
// local containers allow nothing either way, while another namespace's
// policies still apply. One bad policy does not stop the others.
func TestCompileFailsClosedOnInvalidPolicy(t *testing.T) {
	in := world()
	bad := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "x"}}
	named := intstr.FromString("http")
	bad.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: &named}}}}
	good := mustParse(t, np+"metadata: {name: d, namespace: z}\nspec: {podSelector: {}, policyTypes: [Ingress]}")
	in.Policies = append([]networkingv1.NetworkPolicy{bad}, good...)
	rs, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Rejected) != 1 || rs.Rejected[0].Namespace != "x" || rs.Rejected[0].Name != "bad" || !strings.Contains(rs.Rejected[0].Err.Error(), "x/bad") {
		t.Fatalf("rejected %+v, want x/bad with a reason naming it", rs.Rejected)
	}
	checkFailClosed(t, in, rs, "x")
	// A namespace the caller could not read (a value that does not parse).
	in.Policies = good
	in.FailClosed = []string{"y"}
	rs, err = Compile(in)
	if err != nil || len(rs.Rejected) != 0 {
		t.Fatalf("err %v rejected %+v", err, rs.Rejected)
	}
	checkFailClosed(t, in, rs, "y")
}

// checkFailClosed: every local container of ns reaches and is reached by
// nothing; z's deny-all still isolates z's; the rest is open.
func checkFailClosed(t *testing.T, in Input, rs RuleSet, ns string) {
	t.Helper()
	any := netip.MustParseAddr("192.0.2.7")
	for _, ep := range in.Endpoints {
		if ep.Node != in.Node {
			continue
		}
		for _, pr := range []probe{{ProtoTCP, 80}, {ProtoUDP, 53}, {0, 0}} {
			out := rs.Allows(ep.IP, any, pr.proto, pr.port)
			inb := rs.Allows(any, ep.IP, pr.proto, pr.port)
			switch ep.Namespace {
			case ns:
				if out || inb {
					t.Errorf("%s/%s (fails closed) %v: egress %v ingress %v, want neither", ep.Namespace, ep.Name, pr, out, inb)
				}
			case "z":
				if !out || inb {
					t.Errorf("%s/%s under deny-all ingress %v: egress %v ingress %v", ep.Namespace, ep.Name, pr, out, inb)
				}
			default:
				if !out || !inb {
					t.Errorf("%s/%s %v: egress %v ingress %v, want both open", ep.Namespace, ep.Name, pr, out, inb)
				}
			}
		}
	}
}

// TestCompileRandomPolicies compares Compile with the reference on random
// policy sets over the conformance world (fixed seed: reproducible).
func TestCompileRandomPolicies(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 1))
	sel := func() *metav1.LabelSelector {
		switch r.IntN(4) {
		case 0:
			return &metav1.LabelSelector{}
		case 1:
			return &metav1.LabelSelector{MatchLabels: map[string]string{"pod": []string{"a", "b", "c"}[r.IntN(3)]}}
		case 2:
			return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "pod", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "c"}}}}
		}
		return nil
	}
	nsSel := func() *metav1.LabelSelector {
		switch r.IntN(4) {
		case 0:
			return &metav1.LabelSelector{}
		case 1:
			return &metav1.LabelSelector{MatchLabels: map[string]string{"ns": []string{"x", "y", "z"}[r.IntN(3)]}}
		case 2:
			return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpExists}}}
		}
		return nil
	}
	peers := func() []networkingv1.NetworkPolicyPeer {
		var out []networkingv1.NetworkPolicyPeer
		for range r.IntN(3) {
			if r.IntN(4) == 0 {
				b := &networkingv1.IPBlock{CIDR: []string{"10.244.0.0/16", "10.244.1.0/24", "0.0.0.0/0", "10.244.2.13/32"}[r.IntN(4)]}
				if r.IntN(2) == 0 && b.CIDR != "10.244.2.13/32" {
					b.Except = []string{"10.244.1.10/31"}
				}
				out = append(out, networkingv1.NetworkPolicyPeer{IPBlock: b})
				continue
			}
			p := networkingv1.NetworkPolicyPeer{PodSelector: sel(), NamespaceSelector: nsSel()}
			if p.PodSelector == nil && p.NamespaceSelector == nil {
				p.PodSelector = &metav1.LabelSelector{}
			}
			out = append(out, p)
		}
		return out
	}
	ports := func() []networkingv1.NetworkPolicyPort {
		var out []networkingv1.NetworkPolicyPort
		for range r.IntN(3) {
			proto := []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}[r.IntN(3)]
			p := networkingv1.NetworkPolicyPort{Protocol: &proto}
			if r.IntN(4) > 0 {
				v := intstr.FromInt32(int32(79 + r.IntN(3)))
				p.Port = &v
				if r.IntN(2) == 0 {
					e := v.IntVal + int32(r.IntN(2))
					p.EndPort = &e
				}
			}
			out = append(out, p)
		}
		return out
	}
	for iter := range 150 {
		in := world()
		for k := range 1 + r.IntN(4) {
			p := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", k), Namespace: []string{"x", "y", "z"}[r.IntN(3)]}}
			if s := sel(); s != nil {
				p.Spec.PodSelector = *s
			}
			for range r.IntN(3) {
				p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: peers(), Ports: ports()})
			}
			for range r.IntN(3) {
				p.Spec.Egress = append(p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: peers(), Ports: ports()})
			}
			switch r.IntN(4) {
			case 0:
				p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
			case 1:
				p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
			}
			in.Policies = append(in.Policies, p)
		}
		t.Run(fmt.Sprint(iter), func(t *testing.T) { checkAgainstReference(t, in) })
		if t.Failed() {
			return
		}
	}
}

// Peers and ports are compiled apart: 2,000 ipBlocks x 1,000 ports is one
// group of about 2,000 + 1,000 elements (it was 2,000,000 boxes), and the
// rule set allows exactly what the reference model does on a sample.
func TestCompilePeersAndPortsApart(t *testing.T) {
	const peers, ports = 2000, 1000
	in := world()
	in.Policies = []networkingv1.NetworkPolicy{PeersTimesPorts("x", peers, ports, []netip.Addr{in.Endpoints[1].IP})}
	rs, err := Compile(in)
	if err != nil || len(rs.Rejected) > 0 {
		t.Fatal(err, rs.Rejected)
	}
	if len(rs.Ingress) != 1 || len(rs.Ingress[0].Ports) != 1 {
		t.Fatalf("classes %+v: want one class with one port group", len(rs.Ingress))
	}
	if n := rs.Ingress[0].Elements(); n > peers+1+ports+1 {
		t.Fatalf("%d elements, want at most peers + ports (%d)", n, peers+ports+2)
	}
	r := rand.New(rand.NewPCG(25, 2))
	for range 5000 {
		var peer netip.Addr
		switch r.IntN(3) {
		case 0: // one of the ipBlocks (every other address from 172.16.0.0)
			peer = u32Addr(addrU32(netip.MustParseAddr("172.16.0.0")) + uint32(2*r.IntN(peers)))
		case 1: // between them
			peer = u32Addr(addrU32(netip.MustParseAddr("172.16.0.1")) + uint32(2*r.IntN(peers)))
		default:
			peer = in.Endpoints[r.IntN(len(in.Endpoints))].IP
		}
		port := uint16(999 + r.IntN(2*ports+2))
		if r.IntN(10) == 0 {
			port = 80
		}
		for _, ep := range in.Endpoints {
			if ep.Node != in.Node || ep.IP == peer {
				continue
			}
			got := rs.Allows(peer, ep.IP, ProtoTCP, port)
			if want := Reachable(in, peer, ep.IP, ProtoTCP, port); got != want {
				t.Fatalf("%s -> %s/%s tcp/%d: Allows %v, Reachable %v", peer, ep.Namespace, ep.Name, port, got, want)
			}
		}
	}
}
