//go:build !unit

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/policy"
	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// The conformance matrix in the shape of Kubernetes' network-policy e2e
// tests: namespaces x, y, z with pods a, b, c each, spread over two hosts,
// every pod serving TCP and UDP on 80 and 81. For each policy case every
// probe between two different pods (9 x 8 pairs x 4 ports) must match the
// truth table of the reference model (policy.Reachable), which is written
// from the Kubernetes API documentation independently of the compiler.

var matrixPorts = []struct {
	proto string
	port  uint16
}{{"tcp", 80}, {"tcp", 81}, {"udp", 80}, {"udp", 81}}

type podRef struct {
	ns, name string
	ctr      *cluster.Container
	ip6      netip.Addr // its IPv6 address, in a dual-stack network
	labels   map[string]string
	removed  bool // by removePod; the cleanup skips it
}

func (p *podRef) String() string { return p.ns + "/" + p.name }

type matrixEnv struct {
	t       *testing.T
	c       *cluster.Cluster
	etcd    *clientv3.Client
	pods    []*podRef
	nsLabel map[string]map[string]string
	dir     string
	applied []string // ns/name of policies in force, for cleanup between cases
	// propagation records how long each change took to be in force on both nodes.
	propagation []time.Duration
	// udpPorts hands out the local ports of UDP probes, each used once.
	udpPorts udpPortSource
	// v6: probe the pods' IPv6 addresses (a dual-stack network).
	v6 bool
}

// newMatrixEnv is the policy tests' view of cluster c: pods to add and
// probe, policies to apply through weftctl, and an etcd client (in node
// 1's namespace) to read revisions with.
func newMatrixEnv(t *testing.T, c *cluster.Cluster) *matrixEnv {
	t.Helper()
	e := &matrixEnv{t: t, c: c, dir: t.TempDir(), nsLabel: map[string]map[string]string{}}
	e.etcd = etcdClientIn(t, c.Nodes[0].Host.NS, c.EtcdEndpoint())
	return e
}

// labelNamespaces labels each namespace ns=<its name> (the matrix's
// namespace selectors match on it).
func (e *matrixEnv) labelNamespaces(names ...string) {
	for _, ns := range names {
		e.weftctl("namespace", "label", ns, "ns="+ns)
		e.nsLabel[ns] = map[string]string{"ns": ns}
	}
}

// addMatrixPods labels namespaces x, y and z and adds pods a, b and c to
// each, spread over nodes 1 and 2 in turn (x/a on node 1, x/b on node 2,
// ...): the conformance matrix's nine pods.
func (e *matrixEnv) addMatrixPods() {
	e.labelNamespaces("x", "y", "z")
	for i, ns := range []string{"x", "y", "z"} {
		for j, pod := range []string{"a", "b", "c"} {
			e.addPod(ns, pod, e.c.Nodes[(i*3+j)%2])
		}
	}
}

// addr is the address of p the matrix probes.
func (e *matrixEnv) addr(p *podRef) netip.Addr {
	if e.v6 {
		return p.ip6
	}
	return p.ctr.IP
}

// ipv6Of is the IPv6 address in a container's CNI result.
func ipv6Of(t *testing.T, ctr *cluster.Container) netip.Addr {
	t.Helper()
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(ctr.Result, &res); err != nil {
		t.Fatalf("%s: CNI result: %v", ctr.Name, err)
	}
	for _, ip := range res.IPs {
		if p, err := netip.ParsePrefix(ip.Address); err == nil && p.Addr().Is6() {
			return p.Addr()
		}
	}
	t.Fatalf("%s: no IPv6 address in its CNI result: %s", ctr.Name, ctr.Result)
	return netip.Addr{}
}

// udpPortSource gives every UDP probe of a test its own local port, below
// the kernel's ephemeral range (32768-60999). A UDP probe must be a new
// flow: with a port of the kernel's choosing it can, by chance, reuse the
// address and port pair of an earlier probe whose conntrack entry still
// lives (30 s after its last datagram), continue that flow and pass a
// policy that refuses new flows (existing connections keep going,
// docs/policy.md). Counted in one run: the refused UDP probes had about
// 2,000 such live pairs to hit among 28,232 ephemeral ports, so about 7 %
// of runs would fail (seen once in CI: x/c -> y/a udp/81 after an update).
type udpPortSource struct {
	mu   sync.Mutex
	next uint16
}

const firstProbePort, lastProbePort = 10000, 32767

func (s *udpPortSource) take() (uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next == 0 {
		s.next = firstProbePort
	}
	if s.next > lastProbePort {
		return 0, fmt.Errorf("all %d UDP probe ports used", lastProbePort-firstProbePort+1)
	}
	p := s.next
	s.next++
	return p, nil
}

func (e *matrixEnv) weftctl(args ...string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append([]string{"--etcd-endpoints", e.c.EtcdEndpoint()}, args...)
	return runIn(e.t, ctx, e.c.Nodes[0].Host.NS, filepath.Join(binDir, "weftctl"), full...)
}

// revision is etcd's current revision (everything written so far).
func (e *matrixEnv) revision() int64 {
	e.t.Helper()
	resp, err := e.etcd.Get(ctxFor(e.t, 10*time.Second), "/", clientv3.WithCountOnly(), clientv3.WithPrefix())
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.Header.Revision
}

// waitInForce waits until both nodes run rules built from a view at least
// as new as rev, and records how long that took since start.
func (e *matrixEnv) waitInForce(rev int64, start time.Time) {
	e.t.Helper()
	for _, n := range e.c.Nodes {
		deadline := time.Now().Add(30 * time.Second)
		for {
			fams := metrics(e.t, n)
			got := gauge(fams, "weft_policy_revision")
			if got >= float64(rev) {
				if d := time.Since(start); d > time.Second {
					e.t.Logf("node %d reached revision %d after %v (its revision %v)", n.Index+1, rev, d, got)
				}
				break
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("node %d: policy revision %v, want >= %d within 30s\n%s", n.Index+1, got, rev, n.Log(30))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	took := time.Since(start)
	if took > time.Second {
		e.t.Logf("revision %d took %v to be in force on both nodes", rev, took)
	}
	e.propagation = append(e.propagation, took)
}

// apply writes manifests to a file, applies them with weftctl and waits
// until both nodes enforce them.
func (e *matrixEnv) apply(name, manifests string) {
	e.t.Helper()
	path := filepath.Join(e.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(manifests), 0o644); err != nil {
		e.t.Fatal(err)
	}
	out := e.weftctl("policy", "apply", "-f", path)
	start := time.Now() // the write is in etcd
	rev := e.revision()
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "networkpolicy" && !slices.Contains(e.applied, f[1]) {
			e.applied = append(e.applied, f[1])
		}
	}
	e.waitInForce(rev, start)
}

func (e *matrixEnv) deletePolicy(nsName string) {
	e.t.Helper()
	e.weftctl("policy", "delete", nsName)
	start := time.Now()
	e.applied = slices.DeleteFunc(e.applied, func(s string) bool { return s == nsName })
	e.waitInForce(e.revision(), start)
}

func (e *matrixEnv) deleteAll() {
	for len(e.applied) > 0 {
		e.deletePolicy(e.applied[0])
	}
}

// policies reads back what is stored, as weftd sees it.
func (e *matrixEnv) input() policy.Input {
	e.t.Helper()
	in := policy.Input{}
	for ns, labels := range e.nsLabel {
		in.Namespaces = append(in.Namespaces, policy.Namespace{Name: ns, Labels: labels})
	}
	for _, p := range e.pods {
		in.Endpoints = append(in.Endpoints, policy.Endpoint{IP: p.ctr.IP, IPv6: p.ip6, Namespace: p.ns, Name: p.name, Labels: p.labels})
	}
	for _, name := range e.applied {
		out := e.weftctl("policy", "get", name)
		nps, err := policy.ParseManifests([]byte(out))
		if err != nil {
			e.t.Fatalf("policy get %s: %v\n%s", name, err, out)
		}
		in.Policies = append(in.Policies, nps...)
	}
	return in
}

func (e *matrixEnv) addPod(ns, name string, node *cluster.Node) *podRef {
	e.t.Helper()
	labels := map[string]string{"pod": name}
	ctr, err := node.AddWorkload(ctxFor(e.t, 60*time.Second), "wp"+ns+name+"-", cluster.Workload{Namespace: ns, Pod: name, Labels: labels})
	if err != nil {
		e.t.Fatalf("add %s/%s on node %d: %v", ns, name, node.Index+1, err)
	}
	p := &podRef{ns: ns, name: name, ctr: ctr, labels: labels}
	// Registered first, so it runs after the echo server's close.
	e.t.Cleanup(func() {
		if p.removed {
			return
		}
		if err := ctr.Remove(ctxFor(e.t, 60*time.Second)); err != nil {
			e.t.Errorf("remove %s: %v", p, err)
		}
	})
	srv, err := testbed.ServeEcho(ctr.NS.Path(), ctr.IP, []uint16{80, 81})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { srv.Close() })
	if e.v6 {
		p.ip6 = ipv6Of(e.t, ctr)
		srv6, err := testbed.ServeEcho(ctr.NS.Path(), p.ip6, []uint16{80, 81})
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() { srv6.Close() })
	}
	e.pods = append(e.pods, p)
	return p
}

func (e *matrixEnv) removePod(p *podRef) {
	e.t.Helper()
	if err := p.ctr.Remove(ctxFor(e.t, 60*time.Second)); err != nil {
		e.t.Fatal(err)
	}
	p.removed = true
	e.pods = slices.DeleteFunc(e.pods, func(q *podRef) bool { return q == p })
}

type probeKey struct {
	from, to *podRef
	port     int // index into matrixPorts
}

// allKeys is every probe between two different pods.
func (e *matrixEnv) allKeys() []probeKey {
	var keys []probeKey
	for _, from := range e.pods {
		for _, to := range e.pods {
			if from == to {
				continue
			}
			for i := range matrixPorts {
				keys = append(keys, probeKey{from, to, i})
			}
		}
	}
	return keys
}

// probeAll runs the probes in parallel and returns what got through.
func (e *matrixEnv) probeAll(keys []probeKey, timeout time.Duration) map[probeKey]bool {
	e.t.Helper()
	got := make(map[probeKey]bool, len(keys))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 48)
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			mp := matrixPorts[k.port]
			var local uint16 // TCP: the kernel's choice (a SYN on a closed pair is a new connection)
			if mp.proto == "udp" {
				p, err := e.udpPorts.take()
				if err != nil {
					e.t.Error(err)
					return
				}
				local = p
			}
			err := testbed.ProbeFrom(k.from.ctr.NS.Path(), mp.proto, local, netip.AddrPortFrom(e.addr(k.to), mp.port), timeout)
			if err != nil && err != testbed.ErrNoEcho {
				e.t.Errorf("probe %s -> %s %s/%d: %v", k.from, k.to, mp.proto, mp.port, err)
			}
			mu.Lock()
			got[k] = err == nil
			mu.Unlock()
		}()
	}
	wg.Wait()
	return got
}

// check probes the matrix and compares it with the reference truth table;
// on a difference it prints expected, observed and the comparison as grids.
func (e *matrixEnv) check(name string) {
	e.t.Helper()
	in := e.input()
	got := e.probeAll(e.allKeys(), 3*time.Second)
	want := map[probeKey]bool{}
	var missed []probeKey
	for k, ok := range got {
		proto := uint8(policy.ProtoTCP)
		if matrixPorts[k.port].proto == "udp" {
			proto = policy.ProtoUDP
		}
		want[k] = policy.Reachable(in, e.addr(k.from), e.addr(k.to), proto, matrixPorts[k.port].port)
		if want[k] && !ok {
			missed = append(missed, k)
		}
	}
	// An allowed probe may time out on a loaded machine: probe those again,
	// once, with more time. A refused probe that got through is never
	// retried: that is a leak.
	retried := len(missed)
	for k, ok := range e.probeAll(missed, 10*time.Second) {
		got[k] = ok
	}
	wrong := 0
	for k, ok := range got {
		if want[k] != ok {
			wrong++
		}
	}
	if wrong == 0 {
		e.t.Logf("%s: %d probes match the truth table (%d allowed probes needed a second try)", name, len(got), retried)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d of %d probes differ from the truth table (rows: from, columns: to; 1 reachable, 0 not, X wrong)\n", name, wrong, len(got))
	for i, mp := range matrixPorts {
		fmt.Fprintf(&b, "\n%s/%d      expected%s observed%s comparison\n", mp.proto, mp.port, strings.Repeat(" ", 3*len(e.pods)-8), strings.Repeat(" ", 3*len(e.pods)-8))
		header := "     "
		for _, to := range e.pods {
			header += fmt.Sprintf("%-3s", to.ns+to.name)
		}
		fmt.Fprintf(&b, "%s %s %s\n", header, header[5:], header[5:])
		for _, from := range e.pods {
			var exp, obs, cmp strings.Builder
			for _, to := range e.pods {
				if from == to {
					exp.WriteString("-  ")
					obs.WriteString("-  ")
					cmp.WriteString("-  ")
					continue
				}
				k := probeKey{from, to, i}
				exp.WriteString(bit(want[k]) + "  ")
				obs.WriteString(bit(got[k]) + "  ")
				if want[k] == got[k] {
					cmp.WriteString(".  ")
				} else {
					cmp.WriteString("X  ")
				}
			}
			fmt.Fprintf(&b, "%-5s%s %s %s\n", from.ns+from.name, exp.String(), obs.String(), cmp.String())
		}
	}
	e.t.Error(b.String())
}

func bit(ok bool) string {
	if ok {
		return "1"
	}
	return "0"
}

func npYAML(ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: %s\n  namespace: %q\nspec:\n%s\n", name, ns, spec)
}

// backendsUnderTest are the network configs the backend-independent e2e
// tests (policy matrix, container guard) run on.
var backendsUnderTest = []struct{ name, config string }{
	{"udp", cluster.DefaultNetworkConfig},
	{"vxlan", vxlanConfig},
	{"wireguard", wireGuardConfig},
}

func TestPolicyConformanceMatrix(t *testing.T) {
	for _, b := range backendsUnderTest {
		t.Run(b.name, func(t *testing.T) { policyConformanceMatrix(t, b.config) })
	}
}

func policyConformanceMatrix(t *testing.T, networkConfig string) {
	c := newCluster(t, 2, cluster.Options{NetworkConfig: networkConfig})
	e := newMatrixEnv(t, c)
	e.addMatrixPods()
	pod := func(ns, name string) *podRef {
		for _, p := range e.pods {
			if p.ns == ns && p.name == name {
				return p
			}
		}
		t.Fatalf("no pod %s/%s", ns, name)
		return nil
	}
	// Everything open before any policy.
	e.check("no policy")
	yb := pod("y", "b").ctr.IP

	cases := []struct {
		name string
		run  func()
	}{
		{"deny all ingress", func() {
			e.apply("deny-ingress", npYAML("x", "deny-ingress", "  podSelector: {}\n  policyTypes: [Ingress]"))
		}},
		{"deny all egress", func() {
			e.apply("deny-egress", npYAML("x", "deny-egress", "  podSelector: {}\n  policyTypes: [Egress]"))
		}},
		{"allow from the same namespace", func() {
			e.apply("same-ns", npYAML("x", "same-ns", "  podSelector: {}\n  ingress:\n  - from:\n    - podSelector: {}"))
		}},
		{"from a namespace by label", func() {
			e.apply("from-y", npYAML("x", "from-y", "  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {ns: \"y\"}"))
		}},
		{"pod AND namespace selector", func() {
			e.apply("and", npYAML("x", "and", "  podSelector:\n    matchLabels: {pod: a}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {ns: \"y\"}\n      podSelector:\n        matchLabels: {pod: b}"))
		}},
		{"pod OR namespace selector", func() {
			e.apply("or", npYAML("x", "or", "  podSelector:\n    matchLabels: {pod: a}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {ns: \"y\"}\n    - podSelector:\n        matchLabels: {pod: b}"))
		}},
		{"ipBlock with except", func() {
			e.apply("ipblock", npYAML("x", "ipblock", fmt.Sprintf("  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock:\n        cidr: 10.0.0.0/8\n        except: [%s/32]", yb)))
		}},
		{"a port", func() {
			e.apply("port", npYAML("x", "port", "  podSelector: {}\n  ingress:\n  - ports:\n    - port: 81\n      protocol: TCP"))
		}},
		{"a port range with endPort", func() {
			e.apply("range", npYAML("y", "range", "  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {ns: z}}\n    ports:\n    - port: 80\n      endPort: 81\n      protocol: UDP\n    - port: 79\n      endPort: 80"))
		}},
		{"egress to one namespace only", func() {
			e.apply("egress-z", npYAML("x", "egress-z", "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - namespaceSelector: {matchLabels: {ns: z}}"))
		}},
		{"two policies whose union applies", func() {
			e.apply("union", npYAML("z", "u1", "  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {ns: x}}}]\n    ports: [{port: 80}]")+"---\n"+
				npYAML("z", "u2", "  podSelector: {matchLabels: {pod: b}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {ns: \"y\"}}}]\n    ports: [{port: 81, protocol: UDP}]"))
		}},
		{"a policy on one of several pods", func() {
			e.apply("one-pod", npYAML("z", "one-pod", "  podSelector: {matchLabels: {pod: c}}\n  policyTypes: [Ingress, Egress]\n  ingress:\n  - from: [{podSelector: {}}]"))
		}},
		{"an updated policy", func() {
			e.apply("upd", npYAML("y", "upd", "  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {ns: x}}}]"))
			e.check("an updated policy (before the update)")
			e.apply("upd2", npYAML("y", "upd", "  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {ns: z}}}]\n    ports: [{port: 80}]"))
		}},
		{"a deleted policy", func() {
			e.apply("del", npYAML("x", "del", "  podSelector: {}\n  policyTypes: [Ingress, Egress]"))
			e.check("a deleted policy (before the delete)")
			e.deletePolicy("x/del")
		}},
		{"a container added after the policy", func() {
			e.apply("late", npYAML("x", "late", "  podSelector: {}\n  ingress:\n  - from: [{podSelector: {matchLabels: {pod: d}}}, {namespaceSelector: {matchLabels: {ns: z}}}]"))
			d := e.addPod("x", "d", c.Nodes[1])
			rev := e.revision()
			// The plugin's ADD returned only once d's node enforced the
			// policy selecting d: a probe right now is already refused.
			ya := pod("y", "a")
			if err := testbed.Probe(ya.ctr.NS.Path(), "tcp", netip.AddrPortFrom(d.ctr.IP, 80), 3*time.Second); err != testbed.ErrNoEcho {
				t.Errorf("y/a -> x/d right after the ADD: %v, want refused (isolated from the start)", err)
			}
			e.waitInForce(rev, time.Now())
			// The probe above took the time: this wait is no propagation figure.
			e.propagation = e.propagation[:len(e.propagation)-1]
			e.check("a container added after the policy")
			e.removePod(d)
		}},
		{"a namespace labelled after the policy", func() {
			e.apply("by-team", npYAML("x", "by-team", "  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {team: blue}}}]"))
			e.check("a namespace labelled after the policy (before the label)")
			e.weftctl("namespace", "label", "z", "team=blue")
			start := time.Now()
			e.nsLabel["z"]["team"] = "blue"
			e.waitInForce(e.revision(), start)
			e.check("a namespace labelled after the policy")
			e.weftctl("namespace", "label", "z", "team-")
			start = time.Now()
			delete(e.nsLabel["z"], "team")
			e.waitInForce(e.revision(), start)
		}},
		{"ingress and egress together, both nodes", func() {
			e.apply("both", npYAML("y", "both", "  podSelector: {matchExpressions: [{key: pod, operator: In, values: [a, c]}]}\n  policyTypes: [Ingress, Egress]\n  ingress:\n  - from: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: a}}}]\n  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.0/8}}]\n    ports: [{port: 80, protocol: UDP}, {port: 81}]"))
		}},
	}
	for _, tc := range cases {
		tc.run()
		if tc.name != "a container added after the policy" && tc.name != "a namespace labelled after the policy" {
			e.check(tc.name)
		}
		e.deleteAll()
	}
	e.check("all policies deleted")
	slices.Sort(e.propagation)
	if n := len(e.propagation); n > 0 {
		t.Logf("changes in force on both nodes, from the write in etcd (weftctl returned): %d changes, median %v, max %v", n, e.propagation[n/2], e.propagation[n-1])
	}
}

// TestPolicySurvivesRestart: while weftd is stopped the rules of its last
// run stay in force (same-host traffic included), the restarted weftd
// replaces them without a gap and its drop counter carries on.
func TestPolicySurvivesRestart(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{})
	e := newMatrixEnv(t, c)
	n2 := c.Nodes[1]
	a := e.addPod("x", "a", n2)
	b := e.addPod("x", "b", n2)
	refused := func(when string) {
		t.Helper()
		if err := testbed.Probe(a.ctr.NS.Path(), "tcp", netip.AddrPortFrom(b.ctr.IP, 80), 3*time.Second); err != testbed.ErrNoEcho {
			t.Fatalf("x/a -> x/b %s: %v, want refused", when, err)
		}
	}
	e.apply("deny", npYAML("x", "deny", "  podSelector: {matchLabels: {pod: b}}\n  policyTypes: [Ingress]"))
	refused("with the policy")
	// The source check knows the containers' real bridge ports.
	ports := runIn(t, ctxFor(t, 10*time.Second), n2.Host.NS, "nft", "list", "set", "bridge", policy.DefaultTable, "ports")
	links := runIn(t, ctxFor(t, 10*time.Second), n2.Host.NS, "ip", "-o", "link", "show", "master", "weftbr0")
	count := 0
	for _, line := range strings.Split(strings.TrimSpace(links), "\n") {
		f := strings.Fields(line) // "12: wv0123456789a@if2: <...> ..."
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		count++
		if !strings.Contains(ports, `"`+name+`"`) {
			t.Errorf("bridge port %s not in the source check's set:\n%s", name, ports)
		}
	}
	if count != 2 {
		t.Errorf("%d ports on weftbr0, want the 2 containers':\n%s", count, links)
	}
	before := counter(metrics(t, n2), "weft_policy_drops_total", "ingress")
	if before < 1 {
		t.Fatalf("weft_policy_drops_total{direction=ingress} = %v after a refused probe", before)
	}
	if err := n2.Stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	refused("while weftd is stopped")
	if err := n2.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n2.WaitReady(ctxFor(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	refused("after the restart")
	e.waitInForce(e.revision(), time.Now())
	if after := counter(metrics(t, n2), "weft_policy_drops_total", "ingress"); after < before+2 {
		t.Errorf("drops after the restart %v, want at least %v (counted on, two more refusals)", after, before+2)
	}
	e.deletePolicy("x/deny")
	if err := testbed.Probe(a.ctr.NS.Path(), "tcp", netip.AddrPortFrom(b.ctr.IP, 80), 5*time.Second); err != nil {
		t.Fatalf("x/a -> x/b after the policy was deleted: %v", err)
	}
}
