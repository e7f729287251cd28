package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/nfttable"
)

// DefaultTable is the name of the nftables tables (families ip, ip6 and
// bridge) weft's policy lives in. weft touches no other table.
const DefaultTable = "weft-policy"

// Names inside the table.
const (
	ingressMap     = "ingress" // isolated local pod -> jump in_<n>
	egressMap      = "egress"  // isolated local pod -> jump out_<n>
	ingressCounter = "ingress_drops"
	egressCounter  = "egress_drops"
	ipv6Counter    = "ipv6_bridged_drops"
	spoofCounter   = "spoofed_source_drops"
	// elementsPerMessage bounds one netlink message of set elements.
	elementsPerMessage = 2048
	// socketBuffer is forced on the netlink socket: a large rule set goes to
	// the kernel as one batch, one transaction.
	socketBuffer = 64 << 20
)

// EnforcerOptions configures an Enforcer.
type EnforcerOptions struct {
	// Table is the nftables table name (family ip); DefaultTable if empty.
	Table string
	// NetNS is an open network namespace fd to work in; 0 = the current one.
	NetNS int
	// Bridge is the containers' bridge. When set, IPv6 bridged between two
	// of its ports is dropped except ICMPv6 (neighbour discovery): weft
	// gives containers IPv4 only, and IPv6 link-local traffic between
	// containers would otherwise pass around IPv4 policy. It needs the
	// bridge's nf_call_ip6tables (EnableBridgeFiltering sets it).
	Bridge string
}

// Enforcer installs RuleSets into the kernel's netfilter: one table of
// family ip with base chains on the forward hook (pod to pod on this node,
// pod to and from other nodes) and the input hook (pod to this node).
// Traffic the node itself sends to its pods (output hook) is not filtered.
//
// Per packet: connections already accepted pass on their conntrack state
// (established, related); a new one costs one verdict-map lookup per
// direction on the local pod address and, for an isolated pod, lookups in
// its class's sets: the peer in an interval set of addresses allowed
// everything, then, per distinct set of ports the class allows, the peer
// in that group's address set and protocol . port in its port set. None
// grows with the number of pods, policies or peers.
//
// Apply replaces the whole table in one netlink batch, which the kernel
// commits as one transaction: packets see the old rules or the new ones,
// never none. Nothing removes the table when weftd stops, so rules stay in
// force until the next weftd replaces them.
type Enforcer struct {
	opts EnforcerOptions

	mu sync.Mutex
	// dropped counts drops of earlier generations of the table (the kernel
	// counters restart with each replacement), so Drops never goes back.
	dropped DropCounts
	// seen is the current generation's counters as last read: when the
	// table vanished (nft flush ruleset) before Apply could read them, the
	// next Apply carries these on instead.
	seen DropCounts
	// installed is the tables' contents (nfttable.Contents) as read back
	// right after the last Apply; Changed compares the kernel's with it.
	installed string
}

// DropCounts are packets dropped by policy, by direction.
type DropCounts struct {
	Ingress uint64 // a new connection to an isolated pod that no rule allows
	Egress  uint64 // a new connection from an isolated pod that no rule allows
	IPv6    uint64 // IPv6 (not ICMPv6) from or to a link-local address, bridged between two containers or from one to this host
	Spoofed uint64 // IPv4 or IPv6 (or ARP, or a neighbour advertisement) from a container port with another source than the container's
}

// atLeast is d with each field raised to m's where m's is larger.
func (d DropCounts) atLeast(m DropCounts) DropCounts {
	return DropCounts{Ingress: max(d.Ingress, m.Ingress), Egress: max(d.Egress, m.Egress),
		IPv6: max(d.IPv6, m.IPv6), Spoofed: max(d.Spoofed, m.Spoofed)}
}

// NewEnforcer returns an Enforcer; it touches the kernel only in Apply.
func NewEnforcer(opts EnforcerOptions) *Enforcer {
	if opts.Table == "" {
		opts.Table = DefaultTable
	}
	return &Enforcer{opts: opts}
}

// Table is the name of the nftables table this Enforcer owns.
func (e *Enforcer) Table() string { return e.opts.Table }

func (e *Enforcer) conn() (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.WithSockOptions(forceBuffers)}
	if e.opts.NetNS != 0 {
		opts = append(opts, nftables.WithNetNSFd(e.opts.NetNS))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("policy: nftables connection: %w", err)
	}
	return c, nil
}

func forceBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("netlink socket buffers: %w", serr)
	}
	return nil
}

func (e *Enforcer) table() *nftables.Table {
	return &nftables.Table{Name: e.opts.Table, Family: nftables.TableFamilyIPv4}
}

// table6 is the IPv6 table of the same name.
func (e *Enforcer) table6() *nftables.Table {
	return &nftables.Table{Name: e.opts.Table, Family: nftables.TableFamilyIPv6}
}

// tableBridge is the bridge-family table of the same name: source checks
// per container port.
func (e *Enforcer) tableBridge() *nftables.Table {
	return &nftables.Table{Name: e.opts.Table, Family: nftables.TableFamilyBridge}
}

func (e *Enforcer) tables() []*nftables.Table {
	return []*nftables.Table{e.table(), e.table6(), e.tableBridge()}
}

// Apply replaces this Enforcer's table with one enforcing rs, atomically.
// On error the previous table stays in force unchanged.
func (e *Enforcer) Apply(rs RuleSet) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.conn()
	if err != nil {
		return err
	}
	previous, err := e.kernelDrops(c)
	if err != nil {
		return err
	}
	previous = previous.atLeast(e.seen)
	t := e.table()
	nfttable.Replace(c, t)
	if err := build(c, t, rs, ipv4()); err != nil {
		return err
	}
	// The IPv6 table always: a container's IPv6 address is isolated as
	// its IPv4 one is (a rule set of IPv4 alone let all IPv6 through).
	t6 := e.table6()
	nfttable.Replace(c, t6)
	if err := build(c, t6, rs, ipv6(e.opts.Bridge)); err != nil {
		return err
	}
	tb := e.tableBridge()
	nfttable.Replace(c, tb)
	if err := buildSources(c, tb, rs); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("policy: nftables transaction for table %s: %w", t.Name, err)
	}
	// What is in force now, as the kernel reads it back: Changed compares
	// with this. After a failed read anything read later differs, so the
	// next check applies again.
	if e.installed, err = nfttable.Contents(c, e.installedTables()...); err != nil {
		e.installed = "unreadable: " + err.Error()
	}
	e.dropped.Ingress += previous.Ingress
	e.dropped.Egress += previous.Egress
	e.dropped.IPv6 += previous.IPv6
	e.dropped.Spoofed += previous.Spoofed
	e.seen = DropCounts{}
	return nil
}

// Remove deletes the table: every pod is open again. weftd never calls it
// on stop (rules stay in force across restarts); tests and uninstall do.
func (e *Enforcer) Remove() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.conn()
	if err != nil {
		return err
	}
	for _, t := range e.tables() {
		nfttable.Delete(c, t)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("policy: delete table %s: %w", e.opts.Table, err)
	}
	return nil
}

// Drops returns the packets dropped by policy since this Enforcer was made
// (including drops counted by a table left by a previous weftd that this
// Enforcer replaced). It never goes backwards.
func (e *Enforcer) Drops() (DropCounts, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.conn()
	if err != nil {
		return DropCounts{}, err
	}
	now, err := e.kernelDrops(c)
	if err != nil {
		return DropCounts{}, err
	}
	now = now.atLeast(e.seen) // a vanished table reads 0 until the next Apply
	e.seen = now
	return DropCounts{Ingress: e.dropped.Ingress + now.Ingress, Egress: e.dropped.Egress + now.Egress,
		IPv6: e.dropped.IPv6 + now.IPv6, Spoofed: e.dropped.Spoofed + now.Spoofed}, nil
}

// kernelDrops reads the tables' counters; a missing table counts zero.
func (e *Enforcer) kernelDrops(c *nftables.Conn) (DropCounts, error) {
	var d DropCounts
	for _, t := range e.tables() {
		objs, err := c.GetNamedObjects(t)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return DropCounts{}, fmt.Errorf("policy: read counters of table %s: %w", e.opts.Table, err)
		}
		for _, o := range objs {
			n, ok := o.(*nftables.NamedObj)
			if !ok {
				continue
			}
			ctr, ok := n.Obj.(*expr.Counter)
			if !ok {
				continue
			}
			switch n.Name {
			case ingressCounter:
				d.Ingress += ctr.Packets
			case egressCounter:
				d.Egress += ctr.Packets
			case ipv6Counter:
				d.IPv6 += ctr.Packets
			case spoofCounter:
				d.Spoofed += ctr.Packets
			}
		}
	}
	return d, nil
}

// linkLocalRules are the IPv6 table's rules for link-local addresses
// (which name no container: policy keys on containers' global
// addresses): IPv6 other than ICMPv6 from or to a link-local address
// between two ports of the bridge (forward), or from a link-local address
// on the bridge to this host (input), is dropped. br_netfilter passes
// bridged frames to the forward hook with the bridge as input and output
// device. The host's services listening on [::] answer on the bridge's
// link-local address, where the policy's maps do not look.
func linkLocalRules(bridge string) (forward, input [][]expr.Any) {
	notICMPv6 := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
	}
	drop := []expr.Any{
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: ipv6Counter},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
	fromBridge := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(bridge)},
	}
	toBridge := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(bridge)},
	}
	for _, offset := range []uint32{ip6Src, ip6Dst} {
		forward = append(forward, slices.Concat(fromBridge, toBridge, linkLocalAt(offset), notICMPv6, drop))
	}
	input = append(input, slices.Concat(fromBridge, linkLocalAt(ip6Src), notICMPv6, drop))
	return forward, input
}

// linkLocalAt matches an IPv6 address in fe80::/10 at offset of the
// network header (in register 16, leaving 1 and 12 alone).
func linkLocalAt(offset uint32) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 16, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 16},
		&expr.Bitwise{SourceRegister: 16, DestRegister: 16, Len: 16, Mask: linkLocalMask[:], Xor: make([]byte, 16)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 16, Data: linkLocalPrefix[:]},
	}
}

// fe80::/10
var (
	linkLocalMask   = [16]byte{0xff, 0xc0}
	linkLocalPrefix = [16]byte{0xfe, 0x80}
)

// ndTypes are the ICMPv6 messages a container needs from and to its
// neighbours whatever the policy: multicast listener query, report, done
// and v2 report (130-132, 143), router solicitation and advertisement,
// neighbour solicitation and advertisement, redirect (133-137). Without
// them an isolated container loses its neighbours (the gateway among
// them), and what its policy allows stops working too.
var ndTypes = []byte{130, 131, 132, 133, 134, 135, 136, 137, 143}

// ndHopLimit is the hop limit a genuine message of each of ndTypes
// carries: 255 for neighbour discovery (RFC 4861 7.1.1, 6.1.1: a receiver
// discards any other), 1 for multicast listener messages (RFC 2710 3,
// RFC 3810 5). Only those pass: one forwarded from another node (hop limit
// decremented) is no neighbour's, and without the check these types were a
// tunnel past any policy (TestICMPv6NeighbourTypesAreNoTunnel).
func ndHopLimit(ty byte) byte {
	if ty >= 133 && ty <= 137 {
		return 255
	}
	return 1
}

// ndSets are the sets of ndTypes by the hop limit they must carry.
type ndSets struct{ nd, mld *nftables.Set }

// addNDSet queues the sets of ndTypes in t: nd_types (hop limit 255) and
// mld_types (hop limit 1).
func addNDSet(c *nftables.Conn, t *nftables.Table) (ndSets, error) {
	var sets ndSets
	for _, s := range []struct {
		set  **nftables.Set
		name string
		hl   byte
	}{{&sets.nd, "nd_types", 255}, {&sets.mld, "mld_types", 1}} {
		set := &nftables.Set{Table: t, Name: s.name, Constant: true, KeyType: nftables.TypeICMP6Type}
		var elems []nftables.SetElement
		for _, ty := range ndTypes {
			if ndHopLimit(ty) == s.hl {
				elems = append(elems, nftables.SetElement{Key: []byte{ty}})
			}
		}
		if err := c.AddSet(set, elems); err != nil {
			return ndSets{}, fmt.Errorf("policy: set %s: %w", set.Name, err)
		}
		*s.set = set
	}
	return sets, nil
}

// ndAccept are the rules accepting the ICMPv6 messages of nd (addNDSet)
// as only a neighbour sends them: icmpv6 type @nd_types ip6 hoplimit 255
// accept, icmpv6 type @mld_types ip6 hoplimit 1 ip6 saddr fe80::/10
// accept (multicast listener messages come from a link-local address,
// RFC 2710 3, RFC 3810 5, which no router forwards: hop limit 1 alone is
// what another node's hop limit 2 becomes here).
func ndAccept(nd ndSets) [][]expr.Any {
	var rules [][]expr.Any
	for _, s := range []struct {
		set       *nftables.Set
		hl        byte
		linkLocal bool
	}{{nd.nd, 255, false}, {nd.mld, 1, true}} {
		r := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: ip6HopLimit, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{s.hl}},
		}
		if s.linkLocal {
			r = append(r, linkLocalAt(ip6Src)...)
		}
		rules = append(rules, append(r,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Lookup{SourceRegister: 1, SetName: s.set.Name, SetID: s.set.ID},
			&expr.Verdict{Kind: expr.VerdictAccept},
		))
	}
	return rules
}

// buildSources queues the bridge table: an IPv4 frame entering the bridge
// from a known container port must carry that container's address as its
// source, and an ARP packet as its sender address. It runs at bridge prerouting, before br_netfilter hands the frame
// to the IPv4 hooks, so nothing downstream sees a borrowed source.
func buildSources(c *nftables.Conn, t *nftables.Table, rs RuleSet) error {
	sources := rs.Sources
	c.AddObj(&nftables.CounterObj{Table: t, Name: spoofCounter})
	ports := &nftables.Set{Table: t, Name: "ports", KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian} // host order: how nft prints names
	bound := &nftables.Set{Table: t, Name: "sources", Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr)}
	bound6 := &nftables.Set{Table: t, Name: "sources6", Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIP6Addr)}
	var portElems, boundElems, bound6Elems []nftables.SetElement
	seen := map[string]bool{}
	for _, s := range sources {
		if s.IP.Is4() {
			a := s.IP.As4()
			boundElems = append(boundElems, nftables.SetElement{Key: append(ifname(s.Port), a[:]...)})
		}
		if s.IPv6.Is6() {
			a := s.IPv6.As16()
			bound6Elems = append(bound6Elems, nftables.SetElement{Key: append(ifname(s.Port), a[:]...)})
		}
		if !seen[s.Port] {
			seen[s.Port] = true
			portElems = append(portElems, nftables.SetElement{Key: ifname(s.Port)})
		}
	}
	for _, set := range []struct {
		s     *nftables.Set
		elems []nftables.SetElement
	}{{ports, portElems}, {bound, boundElems}, {bound6, bound6Elems}} {
		if err := c.AddSet(set.s, nil); err != nil {
			return fmt.Errorf("policy: set %s: %w", set.s.Name, err)
		}
		for start := 0; start < len(set.elems); start += elementsPerMessage {
			if err := c.SetAddElements(set.s, set.elems[start:min(start+elementsPerMessage, len(set.elems))]); err != nil {
				return fmt.Errorf("policy: elements of set %s: %w", set.s.Name, err)
			}
		}
	}
	accept := nftables.ChainPolicyAccept
	pre := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(-200), Policy: &accept})
	// ether type ip: iifname @ports iifname . ip saddr != @sources drop
	// ether type arp: iifname @ports iifname . arp saddr ip != @sources drop
	// (ARP claiming a neighbour's address would repoint the other
	// containers' and the host's neighbour entries to this port: the
	// neighbour's traffic would come here.)
	// (An ARP probe's sender 0.0.0.0 claims nothing and passes.)
	for _, r := range []struct {
		etherType  []byte
		srcOffset  uint32
		probesPass bool
	}{{[]byte{0x08, 0x00}, ipSrc, false}, {[]byte{0x08, 0x06}, arpSenderIP, true}} {
		exprs := []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: r.etherType},
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Lookup{SourceRegister: 1, SetName: ports.Name, SetID: ports.ID},
			&expr.Payload{DestRegister: 12, Base: expr.PayloadBaseNetworkHeader, Offset: r.srcOffset, Len: 4},
		}
		if r.probesPass {
			exprs = append(exprs, &expr.Cmp{Op: expr.CmpOpNeq, Register: 12, Data: []byte{0, 0, 0, 0}})
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: append(exprs,
			&expr.Lookup{SourceRegister: 1, SetName: bound.Name, SetID: bound.ID, Invert: true},
			&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: spoofCounter},
			&expr.Verdict{Kind: expr.VerdictDrop},
		)})
	}
	// IPv6: ether type ip6 iifname @ports ip6 saddr != fe80::/10
	// ip6 saddr != :: iifname . ip6 saddr != @sources6 drop. Link-local
	// sources (neighbour discovery, and nothing else reaches past the
	// policy's link-local rules) and the unspecified address (duplicate
	// address detection) claim no container's address.
	// ... and a neighbour advertisement for a target that is not the
	// port's own address (link-local aside) is dropped too: like ARP, it
	// would repoint the neighbours' entries for that address to this port.
	fromPort := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x86, 0xdd}},
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: ports.Name, SetID: ports.ID},
	}
	notBound := []expr.Any{
		&expr.Lookup{SourceRegister: 1, SetName: bound6.Name, SetID: bound6.ID, Invert: true},
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: spoofCounter},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: slices.Concat(fromPort, []expr.Any{
		&expr.Payload{DestRegister: 12, Base: expr.PayloadBaseNetworkHeader, Offset: ip6Src, Len: 16},
		&expr.Bitwise{SourceRegister: 12, DestRegister: 16, Len: 16, Mask: linkLocalMask[:], Xor: make([]byte, 16)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 16, Data: linkLocalPrefix[:]},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 12, Data: make([]byte, 16)},
	}, notBound)})
	c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: slices.Concat(fromPort, []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 12},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 12, Data: []byte{unix.IPPROTO_ICMPV6}},
		&expr.Payload{DestRegister: 12, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 12, Data: []byte{136}},                               // neighbour advertisement
		&expr.Payload{DestRegister: 12, Base: expr.PayloadBaseTransportHeader, Offset: 8, Len: 16}, // its target
		&expr.Bitwise{SourceRegister: 12, DestRegister: 16, Len: 16, Mask: linkLocalMask[:], Xor: make([]byte, 16)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 16, Data: linkLocalPrefix[:]},
	}, notBound)})
	return buildIsolatedPorts(c, t, rs, bound, bound6)
}

// buildIsolatedPorts queues the bridge forward chain: out of the port of a
// container isolated for ingress, IPv4 must be addressed to that container
// (oifname . ip daddr in the bindings set). The bridge floods broadcast and
// multicast to every port, and a datagram to the subnet's broadcast
// address or to 255.255.255.255 carries no isolated container's address
// for the ip table's ingress map to find: isolated containers received
// broadcast from containers no policy admits.
//
// IPv6 likewise (oifname . ip6 daddr in sources6), neighbour discovery
// and multicast listener messages aside: out of the port of a container
// isolated for ingress only those and IPv6 to its own global address
// pass (then the ip6 table's ingress map checks the peer), not IPv6 to
// its link-local or a multicast address, which name no container.
func buildIsolatedPorts(c *nftables.Conn, t *nftables.Table, rs RuleSet, bound, bound6 *nftables.Set) error {
	c.AddObj(&nftables.CounterObj{Table: t, Name: ingressCounter})
	isolated := map[netip.Addr]bool{}
	for _, cl := range rs.Ingress {
		for _, pod := range cl.Pods {
			isolated[pod] = true
		}
	}
	ports := &nftables.Set{Table: t, Name: "ingress_isolated", KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
	var elems []nftables.SetElement
	seen := map[string]bool{}
	for _, s := range rs.Sources {
		if isolated[s.IP] && !seen[s.Port] {
			seen[s.Port] = true
			elems = append(elems, nftables.SetElement{Key: ifname(s.Port)})
		}
	}
	if err := c.AddSet(ports, nil); err != nil {
		return fmt.Errorf("policy: set %s: %w", ports.Name, err)
	}
	for start := 0; start < len(elems); start += elementsPerMessage {
		if err := c.SetAddElements(ports, elems[start:min(start+elementsPerMessage, len(elems))]); err != nil {
			return fmt.Errorf("policy: elements of set %s: %w", ports.Name, err)
		}
	}
	accept := nftables.ChainPolicyAccept
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityRef(-200), Policy: &accept})
	// ether type ip oifname @ingress_isolated oifname . ip daddr != @sources drop
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x08, 0x00}},
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: ports.Name, SetID: ports.ID},
		&expr.Payload{DestRegister: 12, Base: expr.PayloadBaseNetworkHeader, Offset: ipDst, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: bound.Name, SetID: bound.ID, Invert: true},
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: ingressCounter},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	// ether type ip6 icmpv6 type @nd_types accept
	nd, err := addNDSet(c, t)
	if err != nil {
		return err
	}
	for _, r := range ndAccept(nd) {
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: slices.Concat([]expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x86, 0xdd}},
		}, r)})
	}
	// ether type ip6 oifname @ingress_isolated oifname . ip6 daddr != @sources6 drop
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x86, 0xdd}},
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: ports.Name, SetID: ports.ID},
		&expr.Payload{DestRegister: 12, Base: expr.PayloadBaseNetworkHeader, Offset: ip6Dst, Len: 16},
		&expr.Lookup{SourceRegister: 1, SetName: bound6.Name, SetID: bound6.ID, Invert: true},
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: ingressCounter},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	return nil
}

// arpSenderIP is the offset of the sender protocol address in an
// Ethernet/IPv4 ARP packet (the kernel takes no other on a bridge port).
const arpSenderIP = 14

// ifname is an interface name as the kernel compares it (IFNAMSIZ, NUL padded).
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// addrFamily is what build needs to know of one address family.
type addrFamily struct {
	v6       bool
	keyType  nftables.SetDatatype
	src, dst uint32 // offsets of the source and destination address
	// bridge, for IPv6: the containers' bridge, for the link-local rules
	// and the neighbour-discovery accepts ("" for none).
	bridge string
}

func ipv4() addrFamily { return addrFamily{keyType: nftables.TypeIPAddr, src: ipSrc, dst: ipDst} }

func ipv6(bridge string) addrFamily {
	return addrFamily{v6: true, keyType: nftables.TypeIP6Addr, src: ip6Src, dst: ip6Dst, bridge: bridge}
}

func (f addrFamily) addrLen() uint32 {
	if f.v6 {
		return 16
	}
	return 4
}

// has tells whether a is of this family.
func (f addrFamily) has(a netip.Addr) bool { return a.IsValid() && a.Is6() == f.v6 }

// bytes is a in the family's byte layout.
func (f addrFamily) bytes(a netip.Addr) []byte {
	if f.v6 {
		b := a.As16()
		return b[:]
	}
	b := a.As4()
	return b[:]
}

// build queues the table's contents on c, for one address family: the
// family's addresses of rs's pods and peers.
func build(c *nftables.Conn, t *nftables.Table, rs RuleSet, f addrFamily) error {
	c.AddObj(&nftables.CounterObj{Table: t, Name: ingressCounter})
	c.AddObj(&nftables.CounterObj{Table: t, Name: egressCounter})

	ingress := &nftables.Set{Table: t, Name: ingressMap, IsMap: true, KeyType: f.keyType, DataType: nftables.TypeVerdict}
	egress := &nftables.Set{Table: t, Name: egressMap, IsMap: true, KeyType: f.keyType, DataType: nftables.TypeVerdict}
	if err := c.AddSet(ingress, nil); err != nil {
		return fmt.Errorf("policy: map %s: %w", ingressMap, err)
	}
	if err := c.AddSet(egress, nil); err != nil {
		return fmt.Errorf("policy: map %s: %w", egressMap, err)
	}
	if err := addClasses(c, t, ingress, "in_", rs.Ingress, f, f.src, ingressCounter); err != nil {
		return err
	}
	if err := addClasses(c, t, egress, "out_", rs.Egress, f, f.dst, egressCounter); err != nil {
		return err
	}

	accept := nftables.ChainPolicyAccept
	forward := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	input := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	// forward: pod -> pod on this node, pod <-> other nodes.
	c.AddRule(&nftables.Rule{Table: t, Chain: forward, Exprs: establishedAccept()})
	c.AddRule(&nftables.Rule{Table: t, Chain: input, Exprs: establishedAccept()})
	if f.v6 {
		// Neighbour discovery passes whatever the policy (ICMPv6 errors
		// pass as related to their connection).
		nd, err := addNDSet(c, t)
		if err != nil {
			return err
		}
		for _, r := range ndAccept(nd) {
			c.AddRule(&nftables.Rule{Table: t, Chain: forward, Exprs: r})
			c.AddRule(&nftables.Rule{Table: t, Chain: input, Exprs: slices.Clone(r)})
		}
		if f.bridge != "" {
			c.AddObj(&nftables.CounterObj{Table: t, Name: ipv6Counter})
			fw, in := linkLocalRules(f.bridge)
			for _, r := range fw {
				c.AddRule(&nftables.Rule{Table: t, Chain: forward, Exprs: r})
			}
			for _, r := range in {
				c.AddRule(&nftables.Rule{Table: t, Chain: input, Exprs: r})
			}
		}
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: forward, Exprs: vmapLookup(f.src, f.addrLen(), egress)})
	c.AddRule(&nftables.Rule{Table: t, Chain: forward, Exprs: vmapLookup(f.dst, f.addrLen(), ingress)})
	// input: pod -> this node.
	c.AddRule(&nftables.Rule{Table: t, Chain: input, Exprs: vmapLookup(f.src, f.addrLen(), egress)})
	return nil
}

// Offsets of the IPv4 and IPv6 source and destination address.
const (
	ipSrc  = 12
	ipDst  = 16
	ip6Src = 8
	ip6Dst = 24

	ip6HopLimit = 7
)

// addClasses queues one chain per class (prefix + index), jumped to from
// vmap for the class's pods. A class's chain returns (the packet may pass)
// when the peer is in its Any set, or in one of its groups' peer sets with
// the protocol and port in the same group's port set; else it counts and
// drops. Peers and ports are separate sets: elements grow with peers +
// ports, not their product.
//
// Only the family f's addresses are used: a class's chain in the IPv4
// table knows its IPv4 peers, in the IPv6 table its IPv6 peers.
func addClasses(c *nftables.Conn, t *nftables.Table, vmap *nftables.Set, prefix string, classes []Class, f addrFamily, peerOffset uint32, counter string) error {
	var vmapElems []nftables.SetElement
	for i, cl := range classes {
		if !slices.ContainsFunc(cl.Pods, f.has) {
			continue // no pod of this family: nothing jumps to it here
		}
		name := prefix + strconv.Itoa(i)
		chain := c.AddChain(&nftables.Chain{Name: name, Table: t})
		if anyOf := familyRanges(cl.Any, f); len(anyOf) > 0 {
			set, err := addPeerSet(c, t, name+"_any", anyOf, f)
			if err != nil {
				return err
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: chain, Exprs: []expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: peerOffset, Len: f.addrLen()},
				&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
				&expr.Verdict{Kind: expr.VerdictReturn},
			}})
		}
		for j, g := range cl.Ports {
			if !f.has(g.Peers[0].First) { // a group's peers are of one family
				continue
			}
			peers, err := addPeerSet(c, t, name+"_peers_"+strconv.Itoa(j), g.Peers, f)
			if err != nil {
				return err
			}
			ports, err := addPortSet(c, t, name+"_ports_"+strconv.Itoa(j), g.Ports)
			if err != nil {
				return err
			}
			// ip saddr/daddr @peers meta l4proto . th dport @ports return
			c.AddRule(&nftables.Rule{Table: t, Chain: chain, Exprs: []expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: peerOffset, Len: f.addrLen()},
				&expr.Lookup{SourceRegister: 1, SetName: peers.Name, SetID: peers.ID},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
				&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: 9, SetName: ports.Name, SetID: ports.ID},
				&expr.Verdict{Kind: expr.VerdictReturn},
			}})
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: chain, Exprs: []expr.Any{
			&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: counter},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
		for _, pod := range cl.Pods {
			if !f.has(pod) {
				continue
			}
			vmapElems = append(vmapElems, nftables.SetElement{Key: f.bytes(pod), VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: name}})
		}
	}
	return addElements(c, vmap, vmapElems)
}

// familyRanges is the ranges of family f (ranges sorted: IPv4 first).
func familyRanges(ranges []IPRange, f addrFamily) []IPRange {
	i, _ := slices.BinarySearchFunc(ranges, true, func(r IPRange, _ bool) int {
		if r.First.Is6() {
			return 0
		}
		return -1
	})
	if f.v6 {
		return ranges[i:]
	}
	return ranges[:i]
}

// addPeerSet queues an interval set of ranges of family f (start element,
// end element one past the range flagged as the interval's end).
func addPeerSet(c *nftables.Conn, t *nftables.Table, name string, ranges []IPRange, f addrFamily) (*nftables.Set, error) {
	set := &nftables.Set{Table: t, Name: name, Interval: true, KeyType: f.keyType}
	if err := c.AddSet(set, nil); err != nil {
		return nil, fmt.Errorf("policy: set %s: %w", name, err)
	}
	elems := make([]nftables.SetElement, 0, 2*len(ranges))
	for _, r := range ranges {
		if !f.has(r.First) {
			continue
		}
		elems = append(elems, nftables.SetElement{Key: f.bytes(r.First)})
		if end := r.Last.Next(); end.IsValid() && f.has(end) {
			elems = append(elems, nftables.SetElement{Key: f.bytes(end), IntervalEnd: true})
		}
	}
	return set, addElements(c, set, elems)
}

// addPortSet queues an interval set of protocol . port ranges.
func addPortSet(c *nftables.Conn, t *nftables.Table, name string, ports []PortRange) (*nftables.Set, error) {
	set := &nftables.Set{Table: t, Name: name, Interval: true, Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)}
	if err := c.AddSet(set, nil); err != nil {
		return nil, fmt.Errorf("policy: set %s: %w", name, err)
	}
	elems := make([]nftables.SetElement, 0, len(ports))
	for _, p := range ports {
		elems = append(elems, nftables.SetElement{Key: portKey(p.Protocol, p.First), KeyEnd: portKey(p.Protocol, p.Last)})
	}
	return set, addElements(c, set, elems)
}

// addElements queues elems into set, a bounded number per message.
func addElements(c *nftables.Conn, set *nftables.Set, elems []nftables.SetElement) error {
	for start := 0; start < len(elems); start += elementsPerMessage {
		if err := c.SetAddElements(set, elems[start:min(start+elementsPerMessage, len(elems))]); err != nil {
			return fmt.Errorf("policy: elements of set %s: %w", set.Name, err)
		}
	}
	return nil
}

// portKey lays out inet_proto . inet_service in 4-byte registers, as the
// kernel compares them.
func portKey(proto uint8, port uint16) []byte {
	b := make([]byte, 8)
	b[0] = proto
	copy(b[4:], binaryutil.BigEndian.PutUint16(port))
	return b
}

func establishedAccept() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

func vmapLookup(offset, length uint32, m *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: length},
		&expr.Lookup{SourceRegister: 1, SetName: m.Name, SetID: m.ID, DestRegister: 0, IsDestRegSet: true},
	}
}

// installedTables are the tables Apply fills.
func (e *Enforcer) installedTables() []*nftables.Table { return e.tables() }

// Changed compares the tables in the kernel with what the last Apply
// installed, chain by chain, rule by rule, element by element: it returns
// "" when they are the same, else where they first differ (a flushed chain
// or map, a deleted or inserted rule, a deleted table after `nft flush
// ruleset`). The caller then applies again. Before any Apply it returns "".
func (e *Enforcer) Changed() (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.installed == "" {
		return "", nil
	}
	c, err := e.conn()
	if err != nil {
		return "", err
	}
	now, err := nfttable.Contents(c, e.installedTables()...)
	if err != nil {
		return "", fmt.Errorf("policy: %w", err)
	}
	return nfttable.Diff(e.installed, now), nil
}
