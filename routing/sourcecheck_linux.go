package routing

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/nfttable"
)

// SourceTable is the nftables table (family ip, and ip6 on a network with
// IPv6) of the L2 source check.
const SourceTable = "weft-direct"

// wrongSourceCounter is the named counter of the packets the check drops;
// it lives as long as the table, so replacing the rules keeps its count.
const wrongSourceCounter = "wrong-l2-source"

// SourceCheck keeps table ip weft-direct (and ip6 weft-direct for IPv6
// subnets): one rule per direct peer subnet that drops packets arriving on
// the underlay with a source in the subnet and an Ethernet source other
// than the peer's.
type SourceCheck struct {
	dev    string
	opts   []nftables.ConnOption
	tables []*nftables.Table // ip, then ip6 when the check has IPv6
	chains []*nftables.Chain
	last   []Binding
}

// NewSourceCheck (re)creates the table, empty, for the underlay device
// dev; a table left by an earlier run is replaced. opts choose the
// namespace (none: the caller's).
func NewSourceCheck(dev string, opts ...nftables.ConnOption) (*SourceCheck, error) {
	return NewSourceCheckFor(dev, false, opts...)
}

// NewSourceCheckFor is NewSourceCheck that also (re)creates table ip6
// weft-direct when ipv6, for the bindings of IPv6 subnets.
func NewSourceCheckFor(dev string, ipv6 bool, opts ...nftables.ConnOption) (*SourceCheck, error) {
	if len(dev) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("source check: interface name %q too long", dev)
	}
	s := &SourceCheck{dev: dev, opts: opts, tables: []*nftables.Table{{Name: SourceTable, Family: nftables.TableFamilyIPv4}}}
	if ipv6 {
		s.tables = append(s.tables, &nftables.Table{Name: SourceTable, Family: nftables.TableFamilyIPv6})
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("source check: nftables: %w", err)
	}
	accept := nftables.ChainPolicyAccept
	for _, t := range s.tables {
		nfttable.Replace(c, t)
		s.chains = append(s.chains, c.AddChain(&nftables.Chain{Name: "underlay-in", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &accept}))
		c.AddObj(&nftables.CounterObj{Table: t, Name: wrongSourceCounter})
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("source check: create table %s: %w", SourceTable, err)
	}
	return s, nil
}

// Set replaces the rules with one per binding, in one transaction. It does
// nothing when the bindings are those of the last Set.
func (s *SourceCheck) Set(bindings []Binding) error {
	bindings = slices.Clone(bindings)
	slices.SortFunc(bindings, func(a, b Binding) int { return a.Subnet.Compare(b.Subnet) })
	if slices.EqualFunc(bindings, s.last, func(a, b Binding) bool { return a.Subnet == b.Subnet && bytes.Equal(a.MAC, b.MAC) }) && s.last != nil {
		return nil
	}
	for _, b := range bindings {
		if !b.Subnet.IsValid() || b.Subnet.Addr().Is4In6() || len(b.MAC) != 6 {
			return fmt.Errorf("source check: %v: want a subnet and an Ethernet address", b)
		}
		if !b.Subnet.Addr().Is4() && len(s.tables) < 2 {
			return fmt.Errorf("source check: %v: an IPv6 subnet, and the check has no IPv6 table", b)
		}
	}
	c, err := nftables.New(s.opts...)
	if err != nil {
		return fmt.Errorf("source check: nftables: %w", err)
	}
	for _, ch := range s.chains {
		c.FlushChain(ch)
	}
	for _, b := range bindings {
		i := 0
		if !b.Subnet.Addr().Is4() {
			i = 1
		}
		c.AddRule(&nftables.Rule{Table: s.tables[i], Chain: s.chains[i], Exprs: s.rule(b)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("source check: replace rules of table %s: %w", SourceTable, err)
	}
	if bindings == nil {
		bindings = []Binding{}
	}
	s.last = bindings
	return nil
}

// Dropped is how many packets the check has dropped since NewSourceCheck
// (both families).
func (s *SourceCheck) Dropped() (uint64, error) {
	c, err := nftables.New(s.opts...)
	if err != nil {
		return 0, fmt.Errorf("source check: nftables: %w", err)
	}
	var n uint64
	for _, t := range s.tables {
		o, err := c.GetObject(&nftables.CounterObj{Table: t, Name: wrongSourceCounter})
		if err != nil {
			return 0, fmt.Errorf("source check: read counter: %w", err)
		}
		co, ok := o.(*nftables.CounterObj)
		if !ok {
			return 0, fmt.Errorf("source check: counter %s is a %T", wrongSourceCounter, o)
		}
		n += co.Packets
	}
	return n, nil
}

// Close deletes the table; a table already gone is fine.
func (s *SourceCheck) Close() error {
	c, err := nftables.New(s.opts...)
	if err != nil {
		return fmt.Errorf("source check: nftables: %w", err)
	}
	for _, t := range s.tables {
		nfttable.Delete(c, t)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("source check: delete table %s: %w", SourceTable, err)
	}
	return nil
}

// rule: iifname dev, iiftype ether, ip (ip6) saddr in subnet, ether saddr
// not the peer's: count and drop.
func (s *SourceCheck) rule(b Binding) []expr.Any {
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, s.dev)
	off, size := uint32(12), uint32(4) // the IPv4 source address
	maskb := []byte(net.CIDRMask(b.Subnet.Bits(), 32))
	addrb := b.Subnet.Masked().Addr().AsSlice()
	if !b.Subnet.Addr().Is4() {
		off, size = 8, 16 // the IPv6 source address
		maskb = net.CIDRMask(b.Subnet.Bits(), 128)
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
		&expr.Meta{Key: expr.MetaKeyIIFTYPE, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint16(unix.ARPHRD_ETHER)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: size, Mask: maskb, Xor: make([]byte, size)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addrb},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte(b.MAC)},
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: wrongSourceCounter},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// Neighbours returns the link-layer addresses the kernel knows for addrs
// (of either family) on the underlay (entries that are resolved, even if
// stale).
func (k *Kernel) Neighbours(addrs []netip.Addr) (map[netip.Addr]net.HardwareAddr, error) {
	list, err := k.h.NeighList(k.link, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("routing: neighbours on %s: %w", k.dev, err)
	}
	if slices.ContainsFunc(addrs, func(a netip.Addr) bool { return !a.Unmap().Is4() }) {
		list6, err := k.h.NeighList(k.link, unix.AF_INET6)
		if err != nil {
			return nil, fmt.Errorf("routing: IPv6 neighbours on %s: %w", k.dev, err)
		}
		list = append(list, list6...)
	}
	const resolved = unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE | unix.NUD_PERMANENT
	out := map[netip.Addr]net.HardwareAddr{}
	for _, n := range list {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.State&resolved == 0 || len(n.HardwareAddr) != 6 {
			continue
		}
		if ip = ip.Unmap(); slices.Contains(addrs, ip) {
			out[ip] = slices.Clone(n.HardwareAddr)
		}
	}
	return out, nil
}
