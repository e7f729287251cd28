package policy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// NamespaceNameLabel is set on every namespace, as Kubernetes does, so a
// namespaceSelector can name a namespace.
const NamespaceNameLabel = "kubernetes.io/metadata.name"

// IP protocol numbers for the protocols NetworkPolicy ports name.
const (
	ProtoTCP  = 6
	ProtoUDP  = 17
	ProtoSCTP = 132
)

// Endpoint is one container weft knows: its addresses, namespace, labels
// and the node that runs it.
type Endpoint struct {
	// IP is its IPv4 address (invalid when it has none: an IPv6-only
	// network). An IPv6 address here is read as IPv6.
	IP netip.Addr
	// IPv6 is its IPv6 address (invalid when it has none).
	IPv6      netip.Addr
	Namespace string
	Name      string
	Labels    map[string]string
	Node      string
	// HostIf is the host side of the container's veth on this node's
	// bridge (only for this node's endpoints). When set, frames from that
	// port must carry the container's addresses as their source (IPv4;
	// IPv6 other than link-local): a container cannot borrow a
	// neighbour's address to pass its policies.
	HostIf string
}

// Addrs returns the endpoint's valid addresses (IPv4-mapped IPv6 read as
// IPv4), without duplicates.
func (ep Endpoint) Addrs() []netip.Addr {
	var out []netip.Addr
	for _, a := range [2]netip.Addr{ep.IP, ep.IPv6} {
		if !a.IsValid() {
			continue
		}
		a = a.Unmap().WithZone("")
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// appendAddrs appends the endpoint's addresses of each family to pods.
func (ep Endpoint) appendAddrs(pods []netip.Addr) []netip.Addr {
	v4, v6 := ep.v4v6()
	if v4.IsValid() {
		pods = append(pods, v4)
	}
	if v6.IsValid() {
		pods = append(pods, v6)
	}
	return pods
}

// sortKey is its IPv4 address, else its IPv6 address.
func (ep Endpoint) sortKey() netip.Addr {
	if v4, v6 := ep.v4v6(); v4.IsValid() {
		return v4
	} else {
		return v6
	}
}

// v4 and v6 are the endpoint's address of each family (invalid when none).
func (ep Endpoint) v4v6() (v4, v6 netip.Addr) {
	for _, a := range [2]netip.Addr{ep.IP, ep.IPv6} {
		if !a.IsValid() {
			continue
		}
		a = a.Unmap().WithZone("")
		if a.Is4() {
			v4 = a
		} else {
			v6 = a
		}
	}
	return v4, v6
}

// Namespace is a namespace with its labels. Namespaces named by endpoints or
// policies but absent here have only NamespaceNameLabel.
type Namespace struct {
	Name   string
	Labels map[string]string
}

// Input is everything Compile reads. Node names this node: endpoints whose
// Node equals it are the ones this node enforces for.
type Input struct {
	Policies   []networkingv1.NetworkPolicy
	Namespaces []Namespace
	Endpoints  []Endpoint
	Node       string
	// FailClosed names namespaces whose policies weft could not read
	// (a stored value that does not parse): this node's containers in them
	// are isolated in both directions with nothing allowed, until the
	// policy is fixed or deleted.
	FailClosed []string
}

// IPRange is an inclusive range of addresses of one family.
type IPRange struct{ First, Last netip.Addr }

func (r IPRange) String() string {
	if r.First == r.Last {
		return r.First.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// PortRange is protocol Protocol, ports First..Last.
type PortRange struct {
	Protocol    uint8
	First, Last uint16
}

// PortGroup allows every peer in Peers on every port range in Ports. Peers
// and ports are kept apart (not a list of peer x port boxes), so a policy
// of P ipBlocks and Q ports costs P + Q elements, not P x Q.
type PortGroup struct {
	Peers []IPRange   // sorted, disjoint, not adjacent
	Ports []PortRange // sorted by protocol then port, merged
}

// Class is a group of this node's containers that the same policies select
// in one direction, and what they may exchange. Any and the groups' peers
// are disjoint: no address is in two Any ranges or in two groups, and no
// group's peer overlaps an Any range. An empty Class allows nothing.
//
// A class holds both families: Pods has the IPv4 and IPv6 addresses of its
// containers, Any and each group's Peers ranges of either family (a
// group's peers are all of one family). IPv4 traffic of a pod meets the
// IPv4 ranges, IPv6 traffic the IPv6 ones: a pod isolated in a direction is
// isolated in both families.
type Class struct {
	Pods  []netip.Addr // sorted (IPv4 before IPv6)
	Any   []IPRange    // peers allowed on every protocol and port, sorted
	Ports []PortGroup  // peers allowed on some ports, one group per set of ports
}

// Elements counts the peer ranges and port ranges of the class: what its
// kernel sets hold, linear in the policies' peers plus ports.
func (c Class) Elements() int {
	n := len(c.Any)
	for _, g := range c.Ports {
		n += len(g.Peers) + len(g.Ports)
	}
	return n
}

// RuleSet is what one node enforces: for each direction, its isolated
// containers grouped in classes. A container in no class of a direction is
// not isolated in that direction. Ingress peers are sources, egress peers
// destinations.
type RuleSet struct {
	Ingress []Class
	Egress  []Class
	// Sources binds this node's container ports to their addresses
	// (endpoints with HostIf), sorted by port.
	Sources []SourceBinding
	// Rejected is the policies Compile left out because they do not
	// validate; their namespaces failed closed as Input.FailClosed's.
	Rejected []RejectedPolicy
}

// RejectedPolicy is a policy Compile could not use, and why.
type RejectedPolicy struct {
	Namespace, Name string
	Err             error
}

// SourceBinding is a bridge port and the only sources it may send: IPv4
// IP and, besides link-local addresses, IPv6 IPv6 (either invalid when the
// container has no address of that family: then it may send none).
type SourceBinding struct {
	Port string
	IP   netip.Addr
	IPv6 netip.Addr
}

// Pods counts the isolated containers per direction.
func (rs RuleSet) Pods() (ingress, egress int) {
	for _, c := range rs.Ingress {
		ingress += len(c.Pods)
	}
	for _, c := range rs.Egress {
		egress += len(c.Pods)
	}
	return ingress, egress
}

// Allows reports whether the rule set lets a packet of a new connection from
// src to dst (protocol proto, destination port port) pass, as far as this
// node's containers are concerned: src's egress if src is isolated here, then
// dst's ingress if dst is isolated here. proto 0 means a protocol without
// ports (ICMP); it passes only Any ranges.
func (rs RuleSet) Allows(src, dst netip.Addr, proto uint8, port uint16) bool {
	return classAllows(rs.Egress, src, dst, proto, port) && classAllows(rs.Ingress, dst, src, proto, port)
}

func classAllows(classes []Class, pod, peer netip.Addr, proto uint8, port uint16) bool {
	for _, c := range classes {
		if _, found := slices.BinarySearchFunc(c.Pods, pod, netip.Addr.Compare); !found {
			continue
		}
		for _, r := range c.Any {
			if r.contains(peer) {
				return true
			}
		}
		for _, g := range c.Ports {
			if !rangesContain(g.Peers, peer) {
				continue
			}
			for _, r := range g.Ports {
				if r.Protocol == proto && port >= r.First && port <= r.Last {
					return true
				}
			}
		}
		return false
	}
	return true
}

// rangesContain tells whether a is in one of rs (sorted, disjoint).
func rangesContain(rs []IPRange, a netip.Addr) bool {
	i, _ := slices.BinarySearchFunc(rs, a, func(r IPRange, a netip.Addr) int {
		switch {
		case r.Last.Less(a):
			return -1
		case a.Less(r.First):
			return 1
		}
		return 0
	})
	return i < len(rs) && rs[i].contains(a)
}

func (r IPRange) contains(a netip.Addr) bool {
	return a.Compare(r.First) >= 0 && a.Compare(r.Last) <= 0
}

// Compile resolves every policy against the endpoints and namespaces and
// returns the rules for the containers of in.Node, with Kubernetes'
// semantics: a container is isolated in a direction when a policy of its
// namespace selects it with that policy type; it may then exchange what the
// union of those policies' rules in that direction allows. Policies are
// defaulted (SetDefaults) and validated; a policy that does not validate is
// left out and listed in RuleSet.Rejected, and its namespace fails closed:
// this node's containers in it (and in every namespace of
// in.FailClosed) are isolated in both directions with nothing allowed.
// One bad policy never stops the others from applying.
func Compile(in Input) (RuleSet, error) {
	c := newCompiler(in)
	rs := RuleSet{
		Ingress:  c.direction(networkingv1.PolicyTypeIngress),
		Egress:   c.direction(networkingv1.PolicyTypeEgress),
		Rejected: c.rejected,
	}
	for _, ep := range c.local {
		if ep.HostIf != "" {
			v4, v6 := ep.v4v6()
			rs.Sources = append(rs.Sources, SourceBinding{Port: ep.HostIf, IP: v4, IPv6: v6})
		}
	}
	slices.SortFunc(rs.Sources, func(a, b SourceBinding) int { return strings.Compare(a.Port, b.Port) })
	return rs, nil
}

type compiledPolicy struct {
	np          *networkingv1.NetworkPolicy
	podSelector labels.Selector
	types       map[networkingv1.PolicyType]bool
	// rules per direction, each resolved to peer ranges and ports.
	rules map[networkingv1.PolicyType][]resolvedRule
}

type resolvedRule struct {
	peers  []span    // IPv4, disjoint, sorted
	peers6 []IPRange // IPv6, in any order, may overlap
	ports  []portSpan
	all    bool // no ports given: every protocol and port
}

type span struct{ first, last uint32 }

type portSpan struct {
	proto       uint8
	first, last uint16
}

type compiler struct {
	in         Input
	nsLabels   map[string]labels.Set
	policies   []compiledPolicy
	local      []Endpoint
	rejected   []RejectedPolicy
	failClosed map[string]bool
}

func newCompiler(in Input) *compiler {
	c := &compiler{in: in, nsLabels: map[string]labels.Set{}, failClosed: map[string]bool{}}
	for _, ns := range in.FailClosed {
		c.failClosed[ns] = true
	}
	for _, ns := range in.Namespaces {
		set := labels.Set{}
		for k, v := range ns.Labels {
			set[k] = v
		}
		set[NamespaceNameLabel] = ns.Name
		c.nsLabels[ns.Name] = set
	}
	implicit := func(name string) {
		if _, ok := c.nsLabels[name]; !ok {
			c.nsLabels[name] = labels.Set{NamespaceNameLabel: name}
		}
	}
	for _, ep := range in.Endpoints {
		implicit(ep.Namespace)
		if ep.Node == in.Node && (ep.IP.IsValid() || ep.IPv6.IsValid()) {
			c.local = append(c.local, ep)
		}
	}
	for i := range in.Policies {
		np := in.Policies[i].DeepCopy()
		if np.Namespace == "" {
			np.Namespace = DefaultNamespace
		}
		SetDefaults(np)
		implicit(np.Namespace)
		err := Validate(np)
		var cp compiledPolicy
		if err == nil {
			cp, err = c.compilePolicy(np)
		}
		if err != nil {
			c.rejected = append(c.rejected, RejectedPolicy{Namespace: np.Namespace, Name: np.Name,
				Err: fmt.Errorf("NetworkPolicy %s/%s: %w", np.Namespace, np.Name, err)})
			c.failClosed[np.Namespace] = true
			continue
		}
		c.policies = append(c.policies, cp)
	}
	slices.SortFunc(c.local, func(a, b Endpoint) int { return a.sortKey().Compare(b.sortKey()) })
	return c
}

func (c *compiler) compilePolicy(np *networkingv1.NetworkPolicy) (compiledPolicy, error) {
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		return compiledPolicy{}, fmt.Errorf("spec.podSelector: %w", err)
	}
	cp := compiledPolicy{
		np:          np,
		podSelector: sel,
		types:       map[networkingv1.PolicyType]bool{},
		rules:       map[networkingv1.PolicyType][]resolvedRule{},
	}
	for _, t := range np.Spec.PolicyTypes {
		cp.types[t] = true
	}
	for i, r := range np.Spec.Ingress {
		rr, err := c.resolveRule(np.Namespace, r.From, r.Ports)
		if err != nil {
			return cp, fmt.Errorf("spec.ingress[%d]: %w", i, err)
		}
		cp.rules[networkingv1.PolicyTypeIngress] = append(cp.rules[networkingv1.PolicyTypeIngress], rr)
	}
	for i, r := range np.Spec.Egress {
		rr, err := c.resolveRule(np.Namespace, r.To, r.Ports)
		if err != nil {
			return cp, fmt.Errorf("spec.egress[%d]: %w", i, err)
		}
		cp.rules[networkingv1.PolicyTypeEgress] = append(cp.rules[networkingv1.PolicyTypeEgress], rr)
	}
	return cp, nil
}

// resolveRule turns peers into address spans and ports into port spans.
func (c *compiler) resolveRule(namespace string, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) (resolvedRule, error) {
	var rr resolvedRule
	if len(peers) == 0 {
		rr.peers = []span{{0, ^uint32(0)}}
		rr.peers6 = []IPRange{allIPv6}
	}
	var spans []span
	for j, peer := range peers {
		if peer.IPBlock != nil {
			spans = append(spans, ipBlockSpans(peer.IPBlock)...)
			rr.peers6 = append(rr.peers6, ipBlockRanges6(peer.IPBlock)...)
			continue
		}
		podSel := labels.Everything()
		if peer.PodSelector != nil {
			s, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
			if err != nil {
				return rr, fmt.Errorf("peer %d podSelector: %w", j, err)
			}
			podSel = s
		}
		var nsSel labels.Selector // nil: the policy's own namespace
		if peer.NamespaceSelector != nil {
			s, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
			if err != nil {
				return rr, fmt.Errorf("peer %d namespaceSelector: %w", j, err)
			}
			nsSel = s
		}
		for _, ep := range c.in.Endpoints {
			v4, v6 := ep.IP, ep.IPv6
			if !v4.Is4() || v6.IsValid() && !v6.Is6() || v4.Is4In6() || v6.Is4In6() {
				v4, v6 = ep.v4v6() // an address given in the other field, or mapped
			}
			if !v4.IsValid() && !v6.IsValid() {
				continue
			}
			if nsSel == nil {
				if ep.Namespace != namespace {
					continue
				}
			} else if !nsSel.Matches(c.nsLabels[ep.Namespace]) {
				continue
			}
			if !podSel.Matches(labels.Set(ep.Labels)) {
				continue
			}
			if v4.IsValid() {
				a := addrU32(v4)
				spans = append(spans, span{a, a})
			}
			if v6.IsValid() {
				rr.peers6 = append(rr.peers6, IPRange{v6, v6})
			}
		}
	}
	if len(peers) > 0 {
		rr.peers = mergeSpans(spans)
	}
	if len(ports) == 0 {
		rr.all = true
		return rr, nil
	}
	for _, p := range ports {
		ps := portSpan{proto: protoNumber(p.Protocol), first: 0, last: 65535}
		if p.Port != nil {
			ps.first = uint16(p.Port.IntVal)
			ps.last = ps.first
			if p.EndPort != nil {
				ps.last = uint16(*p.EndPort)
			}
		}
		rr.ports = append(rr.ports, ps)
	}
	return rr, nil
}

func protoNumber(p *corev1.Protocol) uint8 {
	if p == nil {
		return ProtoTCP
	}
	switch *p {
	case corev1.ProtocolUDP:
		return ProtoUDP
	case corev1.ProtocolSCTP:
		return ProtoSCTP
	default:
		return ProtoTCP
	}
}

// ipBlockSpans returns the IPv4 spans of cidr minus except. An IPv6 block
// matches no IPv4 traffic and yields nothing (ipBlockRanges6 reads it).
func ipBlockSpans(b *networkingv1.IPBlock) []span {
	cidr, err := parsePrefix(b.CIDR)
	if err != nil || !cidr.Addr().Is4() {
		return nil
	}
	spans := []span{prefixSpan(cidr)}
	for _, e := range b.Except {
		ex, err := parsePrefix(e)
		if err != nil || !ex.Addr().Is4() {
			continue
		}
		spans = subtractSpan(spans, prefixSpan(ex))
	}
	return spans
}

// allIPv6 is every IPv6 address.
var allIPv6 = IPRange{netip.IPv6Unspecified(), netip.AddrFrom16([16]byte{0: 0xff, 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff, 8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff})}

// ipBlockRanges6 returns the IPv6 ranges of cidr minus except; an IPv4
// block yields nothing. (Validate has refused an except of the other
// family or outside cidr.)
func ipBlockRanges6(b *networkingv1.IPBlock) []IPRange {
	cidr, err := parsePrefix(b.CIDR)
	if err != nil || !cidr.Addr().Is6() {
		return nil
	}
	ranges := []IPRange{prefixRange(cidr)}
	for _, e := range b.Except {
		ex, err := parsePrefix(e)
		if err != nil || !ex.Addr().Is6() {
			continue
		}
		ranges = subtractRange(ranges, prefixRange(ex))
	}
	return ranges
}

// prefixRange is the first and last address of an IPv6 prefix.
func prefixRange(p netip.Prefix) IPRange {
	p = p.Masked()
	b := p.Addr().As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return IPRange{p.Addr(), netip.AddrFrom16(b)}
}

// subtractRange removes cut from each of ranges.
func subtractRange(ranges []IPRange, cut IPRange) []IPRange {
	var out []IPRange
	for _, r := range ranges {
		if cut.Last.Less(r.First) || r.Last.Less(cut.First) {
			out = append(out, r)
			continue
		}
		if r.First.Less(cut.First) {
			out = append(out, IPRange{r.First, cut.First.Prev()})
		}
		if cut.Last.Less(r.Last) {
			out = append(out, IPRange{cut.Last.Next(), r.Last})
		}
	}
	return out
}

func prefixSpan(p netip.Prefix) span {
	first := addrU32(p.Addr())
	size := uint64(1) << (32 - p.Bits())
	return span{first, uint32(uint64(first) + size - 1)}
}

func subtractSpan(spans []span, cut span) []span {
	var out []span
	for _, s := range spans {
		if cut.last < s.first || cut.first > s.last {
			out = append(out, s)
			continue
		}
		if cut.first > s.first {
			out = append(out, span{s.first, cut.first - 1})
		}
		if cut.last < s.last {
			out = append(out, span{cut.last + 1, s.last})
		}
	}
	return out
}

// mergeSpans sorts spans and joins overlapping and adjacent ones.
func mergeSpans(spans []span) []span {
	if len(spans) == 0 {
		return nil
	}
	s := slices.Clone(spans)
	slices.SortFunc(s, func(a, b span) int { return cmp.Compare(a.first, b.first) })
	out := []span{s[0]}
	for _, x := range s[1:] {
		last := &out[len(out)-1]
		if last.last == ^uint32(0) || x.first <= last.last+1 {
			last.last = max(last.last, x.last)
			continue
		}
		out = append(out, x)
	}
	return out
}

// direction groups this node's containers isolated in direction t by the
// policies that select them and computes each group's allowed traffic.
func (c *compiler) direction(t networkingv1.PolicyType) []Class {
	type group struct {
		policies   []int
		pods       []netip.Addr
		failClosed bool
	}
	groups := map[string]*group{}
	var order []string
	for _, ep := range c.local {
		if c.failClosed[ep.Namespace] {
			// Fails closed: a class of its own that allows nothing.
			const key = "fail-closed"
			g, ok := groups[key]
			if !ok {
				g = &group{failClosed: true}
				groups[key] = g
				order = append(order, key)
			}
			g.pods = ep.appendAddrs(g.pods)
			continue
		}
		var sel []int
		for i, cp := range c.policies {
			if cp.types[t] && cp.np.Namespace == ep.Namespace && cp.podSelector.Matches(labels.Set(ep.Labels)) {
				sel = append(sel, i)
			}
		}
		if len(sel) == 0 {
			continue
		}
		key := intsKey(sel)
		g, ok := groups[key]
		if !ok {
			g = &group{policies: sel}
			groups[key] = g
			order = append(order, key)
		}
		g.pods = ep.appendAddrs(g.pods)
	}
	classes := make([]Class, 0, len(order))
	for _, key := range order {
		g := groups[key]
		slices.SortFunc(g.pods, netip.Addr.Compare)
		if g.failClosed {
			classes = append(classes, Class{Pods: g.pods})
			continue
		}
		var rules []resolvedRule
		for _, i := range g.policies {
			rules = append(rules, c.policies[i].rules[t]...)
		}
		cl := buildClass(rules, spanRange)
		if cl6 := buildClass6(rules); len(cl6.Any) > 0 || len(cl6.Ports) > 0 {
			cl.Any = append(cl.Any, cl6.Any...)
			cl.Ports = append(cl.Ports, cl6.Ports...)
			slices.SortFunc(cl.Ports, func(a, b PortGroup) int { return a.Peers[0].First.Compare(b.Peers[0].First) })
		}
		cl.Pods = g.pods
		classes = append(classes, cl)
	}
	return classes
}

func intsKey(xs []int) string {
	var b strings.Builder
	for _, x := range xs {
		b.WriteString(strconv.Itoa(x))
		b.WriteByte(',')
	}
	return b.String()
}

// buildClass makes the union of rules disjoint: the address line is cut at
// every rule boundary into elementary spans; each gets the union of the
// rules covering it (all traffic, or merged port ranges per protocol).
// Spans allowed everything go to Any; the others are grouped by their port
// ranges (peers and ports kept apart), and neighbours in one group joined.
// It works on IPv4 spans (rules' peers); toRange turns a span into the
// addresses it stands for.
func buildClass(rules []resolvedRule, toRange func(span) IPRange) Class {
	var cuts []uint64 // elementary span starts; a span ends before the next cut
	for _, r := range rules {
		for _, p := range r.peers {
			cuts = append(cuts, uint64(p.first), uint64(p.last)+1)
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	type group struct {
		peers []span
		ports []portSpan
	}
	var anySpans []span
	groups := map[string]*group{}
	var order []string
	// The allowance of a set of covering rules is computed once: a policy
	// of many peers and many ports has one set of ports for all of them.
	memo := map[string]string{}
	var covering []byte
	for i := 0; i+1 < len(cuts); i++ {
		s := span{uint32(cuts[i]), uint32(cuts[i+1] - 1)}
		covering = covering[:0]
		all := false
		for ri, r := range rules {
			if !covers(r.peers, s.first) {
				continue
			}
			if r.all {
				all = true
				break
			}
			covering = strconv.AppendInt(covering, int64(ri), 10)
			covering = append(covering, ',')
		}
		if all {
			anySpans = append(anySpans, s)
			continue
		}
		if len(covering) == 0 {
			continue
		}
		key, ok := memo[string(covering)]
		if !ok {
			var ports []portSpan
			for _, f := range strings.Split(strings.TrimSuffix(string(covering), ","), ",") {
				ri, _ := strconv.Atoi(f)
				ports = append(ports, rules[ri].ports...)
			}
			ports = mergePorts(ports)
			key = portsKey(ports)
			memo[string(covering)] = key
			if _, ok := groups[key]; !ok && len(ports) > 0 {
				groups[key] = &group{ports: ports}
				order = append(order, key)
			}
		}
		if g, ok := groups[key]; ok {
			g.peers = append(g.peers, s)
		}
	}
	var cl Class
	for _, s := range mergeSpans(anySpans) {
		cl.Any = append(cl.Any, toRange(s))
	}
	for _, key := range order {
		g := groups[key]
		pg := PortGroup{}
		for _, s := range mergeSpans(g.peers) {
			pg.Peers = append(pg.Peers, toRange(s))
		}
		for _, p := range g.ports {
			pg.Ports = append(pg.Ports, PortRange{Protocol: p.proto, First: p.first, Last: p.last})
		}
		cl.Ports = append(cl.Ports, pg)
	}
	slices.SortFunc(cl.Ports, func(a, b PortGroup) int { return a.Peers[0].First.Compare(b.Peers[0].First) })
	return cl
}

// spanRange is the IPv4 range of a span.
func spanRange(s span) IPRange { return IPRange{u32Addr(s.first), u32Addr(s.last)} }

// buildClass6 is buildClass for the rules' IPv6 peers. The boundaries of
// all their ranges (a range's first address and the one after its last)
// are numbered in order, and each range becomes the span of the numbers
// it covers: the same algorithm then runs on those numbers (spans that
// touch in numbers touch in addresses), and each resulting span turns back
// into the addresses from its first boundary to the one before the
// boundary after its last.
func buildClass6(rules []resolvedRule) Class {
	var points []netip.Addr
	for _, r := range rules {
		for _, p := range r.peers6 {
			points = append(points, p.First)
			if next := p.Last.Next(); next.IsValid() {
				points = append(points, next)
			}
		}
	}
	if len(points) == 0 {
		return Class{}
	}
	slices.SortFunc(points, netip.Addr.Compare)
	points = slices.Compact(points)
	index := func(a netip.Addr) uint32 {
		i, _ := slices.BinarySearchFunc(points, a, netip.Addr.Compare)
		return uint32(i)
	}
	numbered := make([]resolvedRule, len(rules))
	for i, r := range rules {
		spans := make([]span, 0, len(r.peers6))
		for _, p := range r.peers6 {
			end := uint32(len(points)) // past the last address
			if next := p.Last.Next(); next.IsValid() {
				end = index(next)
			}
			spans = append(spans, span{index(p.First), end - 1})
		}
		numbered[i] = resolvedRule{peers: mergeSpans(spans), ports: r.ports, all: r.all}
	}
	return buildClass(numbered, func(s span) IPRange {
		last := allIPv6.Last
		if int(s.last)+1 < len(points) {
			last = points[s.last+1].Prev()
		}
		return IPRange{points[s.first], last}
	})
}

func portsKey(ports []portSpan) string {
	var b strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&b, "%d/%d-%d,", p.proto, p.first, p.last)
	}
	return b.String()
}

func covers(spans []span, a uint32) bool {
	i, _ := slices.BinarySearchFunc(spans, a, func(s span, a uint32) int {
		switch {
		case s.last < a:
			return -1
		case s.first > a:
			return 1
		}
		return 0
	})
	return i < len(spans) && spans[i].first <= a && a <= spans[i].last
}

func mergePorts(ports []portSpan) []portSpan {
	if len(ports) == 0 {
		return nil
	}
	slices.SortFunc(ports, func(a, b portSpan) int {
		if c := cmp.Compare(a.proto, b.proto); c != 0 {
			return c
		}
		return cmp.Compare(a.first, b.first)
	})
	out := []portSpan{ports[0]}
	for _, p := range ports[1:] {
		last := &out[len(out)-1]
		if p.proto == last.proto && (last.last == 65535 || p.first <= last.last+1) {
			last.last = max(last.last, p.last)
			continue
		}
		out = append(out, p)
	}
	return out
}

func addrU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func u32Addr(x uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
}
