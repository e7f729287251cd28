package guard

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/nfttable"
)

// Options say where the guard's table lives.
type Options struct {
	Table string // DefaultTable if empty
	NetNS int    // an open network namespace fd; 0 = the current one
}

func (o Options) table() *nftables.Table {
	name := o.Table
	if name == "" {
		name = DefaultTable
	}
	return &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}
}

// table6 is the IPv6 table of the same name: the same rules for IPv6
// sources and weft's port, and the embedded etcd's (containers have IPv6
// link-local addresses on the bridge, and an etcd listening on a wildcard
// address, Go listening on both families for 0.0.0.0, answers them there).
func (o Options) table6() *nftables.Table {
	t := o.table()
	t.Family = nftables.TableFamilyIPv6
	return t
}

func (o Options) conn() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if o.NetNS != 0 {
		opts = append(opts, nftables.WithNetNSFd(o.NetNS))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("guard: nftables connection: %w", err)
	}
	return c, nil
}

// Install replaces the guard's table with one enforcing s, in one netlink
// batch (the kernel commits it as one transaction: the old rules or the new
// ones, never none). It touches no other table. The rules match the bridge
// by name, so they hold from before the CNI plugin creates the bridge.
// Nothing removes the table when weftd stops: the containers stay attached
// and the guard stays in force until the next weftd replaces it.
func Install(s Spec, o Options) error {
	if err := s.Validate(); err != nil {
		return err
	}
	c, err := o.conn()
	if err != nil {
		return err
	}
	t := o.table()
	nfttable.Replace(c, t)
	installIPv4(c, t, s)
	t6 := o.table6()
	nfttable.Replace(c, t6)
	installIPv6(c, t6, s)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("guard: nftables transaction for table %s: %w", t.Name, err)
	}
	return nil
}

// chains adds the guard's counters and its two base chains to t.
func chains(c *nftables.Conn, t *nftables.Table) (pre, input *nftables.Chain) {
	for _, r := range Reasons {
		c.AddObj(&nftables.CounterObj{Table: t, Name: r})
	}
	accept := nftables.ChainPolicyAccept
	// prerouting at raw priority: before conntrack, routing and any other
	// table's filter chains; covers traffic to this host and through it.
	pre = c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &accept})
	input = c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRaw, Policy: &accept})
	return pre, input
}

// installIPv4 queues table ip's rules.
func installIPv4(c *nftables.Conn, t *nftables.Table, s Spec) {
	pre, input := chains(c, t)
	if !s.Subnet.IsValid() {
		// iifname BRIDGE drop: an IPv6-only network gives containers no
		// IPv4 address, so any IPv4 source is forged.
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: concat(fromBridge(s.Bridge), countDrop(ReasonSpoofedSource))})
	} else {
		// iifname BRIDGE ip saddr != SUBNET drop
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: concat(
			fromBridge(s.Bridge),
			prefixCmp(ipSrcOffset, s.Subnet, expr.CmpOpNeq),
			countDrop(ReasonSpoofedSource),
		)})
		// iifname BRIDGE ip daddr != NETWORK udp dport PORT drop
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: concat(
			fromBridge(s.Bridge),
			prefixCmp(ipDstOffset, s.Network, expr.CmpOpNeq),
			udpDport(s.Port),
			countDrop(ReasonWeftPort),
		)})
	}
	// iifname BRIDGE udp dport PORT drop (to this host, whatever its address)
	c.AddRule(&nftables.Rule{Table: t, Chain: input, Exprs: concat(
		fromBridge(s.Bridge),
		udpDport(s.Port),
		countDrop(ReasonWeftPort),
	)})
	// iifname != "lo" ip saddr NETWORK tcp dport ETCDPORT drop: containers
	// of this node (the bridge) and of others (through weft0, or the
	// underlay when not masqueraded) to the embedded etcd on any of this
	// host's addresses; the host's own processes (lo) and other hosts
	// (underlay sources) keep it.
	for _, p := range s.EtcdPorts {
		if !s.Network.IsValid() {
			break
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: input, Exprs: concat(
			notFromLoopback(),
			prefixCmp(ipSrcOffset, s.Network, expr.CmpOpEq),
			tcpDport(p),
			countDrop(ReasonEtcd),
		)})
	}
}

// installIPv6 queues table ip6's rules: the IPv4 rules' counterparts for
// the IPv6 subnet and network. Link-local sources (neighbour discovery,
// and containers' link-local addresses, which reach no further than the
// bridge) and :: (duplicate address detection) pass the source check.
func installIPv6(c *nftables.Conn, t *nftables.Table, s Spec) {
	pre, input := chains(c, t)
	// iifname BRIDGE ip6 saddr != fe80::/10 ip6 saddr != :: ip6 saddr != SUBNET6 drop
	spoofed := concat(fromBridge(s.Bridge),
		prefixCmp(ip6SrcOffset, linkLocal, expr.CmpOpNeq),
		prefixCmp(ip6SrcOffset, netip.PrefixFrom(netip.IPv6Unspecified(), 128), expr.CmpOpNeq))
	if s.Subnet6.IsValid() {
		spoofed = concat(spoofed, prefixCmp(ip6SrcOffset, s.Subnet6, expr.CmpOpNeq))
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: concat(spoofed, countDrop(ReasonSpoofedSource))})
	// iifname BRIDGE ip6 daddr != NETWORK6 udp dport PORT drop (any daddr
	// without IPv6 in the network)
	toPort := fromBridge(s.Bridge)
	if s.Network6.IsValid() {
		toPort = concat(toPort, prefixCmp(ip6DstOffset, s.Network6, expr.CmpOpNeq))
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: concat(toPort, udpDport(s.Port), countDrop(ReasonWeftPort))})
	// iifname BRIDGE udp dport PORT drop (this host, any address: the
	// bridge's link-local one too)
	c.AddRule(&nftables.Rule{Table: t, Chain: input, Exprs: concat(fromBridge(s.Bridge), udpDport(s.Port), countDrop(ReasonWeftPort))})
	// iifname BRIDGE tcp dport ETCDPORT drop: containers' link-local
	// addresses on the bridge (an etcd listening on a wildcard address
	// answers there); iifname != "lo" ip6 saddr NETWORK6 tcp dport
	// ETCDPORT drop: containers of any node by their IPv6 addresses.
	for _, p := range s.EtcdPorts {
		c.AddRule(&nftables.Rule{Table: t, Chain: input, Exprs: concat(fromBridge(s.Bridge), tcpDport(p), countDrop(ReasonEtcd))})
		if s.Network6.IsValid() {
			c.AddRule(&nftables.Rule{Table: t, Chain: input, Exprs: concat(
				notFromLoopback(),
				prefixCmp(ip6SrcOffset, s.Network6, expr.CmpOpEq),
				tcpDport(p),
				countDrop(ReasonEtcd),
			)})
		}
	}
}

var linkLocal = netip.MustParsePrefix("fe80::/10")

// Remove deletes the guard's tables (tests and uninstall; weftd never does).
func Remove(o Options) error {
	c, err := o.conn()
	if err != nil {
		return err
	}
	t := o.table()
	nfttable.Delete(c, t)
	nfttable.Delete(c, o.table6())
	if err := c.Flush(); err != nil {
		return fmt.Errorf("guard: delete table %s: %w", t.Name, err)
	}
	return nil
}

// Drops reads the table's drop counters by reason (kernel counters: they
// restart from 0 when Install replaces the table). A missing table counts 0.
func Drops(o Options) (map[string]uint64, error) {
	c, err := o.conn()
	if err != nil {
		return nil, err
	}
	drops := make(map[string]uint64, len(Reasons))
	for _, r := range Reasons {
		drops[r] = 0
	}
	for _, t := range []*nftables.Table{o.table(), o.table6()} {
		objs, err := c.GetNamedObjects(t)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("guard: read counters: %w", err)
		}
		for _, obj := range objs {
			if n, ok := obj.(*nftables.NamedObj); ok {
				if ctr, ok := n.Obj.(*expr.Counter); ok {
					if _, known := drops[n.Name]; known {
						drops[n.Name] += ctr.Packets
					}
				}
			}
		}
	}
	return drops, nil
}

const (
	ipSrcOffset  = 12
	ipDstOffset  = 16
	ip6SrcOffset = 8
	ip6DstOffset = 24
)

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// fromBridge matches packets whose input interface is named bridge.
func fromBridge(bridge string) []expr.Any {
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, bridge)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
	}
}

// prefixCmp compares the address at offset (of p's family), masked to p's
// length, with p.
func prefixCmp(offset uint32, p netip.Prefix, op expr.CmpOp) []expr.Any {
	p = p.Masked()
	addr := p.Addr().AsSlice()
	mask := make([]byte, len(addr))
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	n := uint32(len(addr))
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: op, Register: 1, Data: addr},
	}
}

// notFromLoopback matches packets whose input interface is not lo.
func notFromLoopback() []expr.Any {
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, "lo")
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: name},
	}
}

// tcpDport matches TCP to port.
func tcpDport(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(port >> 8), byte(port)}},
	}
}

// udpDport matches UDP to port.
func udpDport(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(port >> 8), byte(port)}},
	}
}

func countDrop(counter string) []expr.Any {
	return []expr.Any{
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: counter},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// Present tells whether the guard's tables for s are in the kernel with
// their rules (false after `nft flush ruleset`, a deleted table or a
// flushed chain: every chain is looked at, since input alone holds the
// rules that keep containers from weft's port on this host and from the
// embedded etcd).
func Present(s Spec, o Options) (bool, error) {
	c, err := o.conn()
	if err != nil {
		return false, err
	}
	type chain struct {
		t    *nftables.Table
		name string
	}
	want := []chain{{o.table(), "prerouting"}, {o.table(), "input"}, {o.table6(), "prerouting"}, {o.table6(), "input"}}
	for _, w := range want {
		ok, err := nfttable.HasRules(c, w.t, w.name)
		if err != nil {
			return false, fmt.Errorf("guard: %w", err)
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

// Contents reads the guard's tables back as the kernel holds them
// (nfttable.Contents: chains, rules, sets; no counter values). weftd keeps
// the read taken right after Install and compares later reads with it: a
// deleted or inserted rule, a flushed chain or a deleted table differ.
func Contents(o Options) (string, error) {
	c, err := o.conn()
	if err != nil {
		return "", err
	}
	s, err := nfttable.Contents(c, o.table(), o.table6())
	if err != nil {
		return "", fmt.Errorf("guard: %w", err)
	}
	return s, nil
}
