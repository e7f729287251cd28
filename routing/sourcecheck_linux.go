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

// SourceTable is the nftables table (family ip) of the L2 source check.
const SourceTable = "weft-direct"

// wrongSourceCounter is the named counter of the packets the check drops;
// it lives as long as the table, so replacing the rules keeps its count.
const wrongSourceCounter = "wrong-l2-source"

// SourceCheck keeps table ip weft-direct: one rule per direct peer that
// drops packets arriving on the underlay with a source in the peer's
// subnet and an Ethernet source other than the peer's.
type SourceCheck struct {
	dev   string
	opts  []nftables.ConnOption
	table *nftables.Table
	chain *nftables.Chain
	last  []Binding
}

// NewSourceCheck (re)creates the table, empty, for the underlay device
// dev; a table left by an earlier run is replaced. opts choose the
// namespace (none: the caller's).
func NewSourceCheck(dev string, opts ...nftables.ConnOption) (*SourceCheck, error) {
	if len(dev) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("source check: interface name %q too long", dev)
	}
	s := &SourceCheck{dev: dev, opts: opts, table: &nftables.Table{Name: SourceTable, Family: nftables.TableFamilyIPv4}}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("source check: nftables: %w", err)
	}
	nfttable.Replace(c, s.table)
	accept := nftables.ChainPolicyAccept
	s.chain = c.AddChain(&nftables.Chain{Name: "underlay-in", Table: s.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &accept})
	c.AddObj(&nftables.CounterObj{Table: s.table, Name: wrongSourceCounter})
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("source check: create table ip %s: %w", SourceTable, err)
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
		if !b.Subnet.Addr().Is4() || len(b.MAC) != 6 {
			return fmt.Errorf("source check: %v: want an IPv4 subnet and an Ethernet address", b)
		}
	}
	c, err := nftables.New(s.opts...)
	if err != nil {
		return fmt.Errorf("source check: nftables: %w", err)
	}
	c.FlushChain(s.chain)
	for _, b := range bindings {
		c.AddRule(&nftables.Rule{Table: s.table, Chain: s.chain, Exprs: s.rule(b)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("source check: replace rules of table ip %s: %w", SourceTable, err)
	}
	if bindings == nil {
		bindings = []Binding{}
	}
	s.last = bindings
	return nil
}

// Dropped is how many packets the check has dropped since NewSourceCheck.
func (s *SourceCheck) Dropped() (uint64, error) {
	c, err := nftables.New(s.opts...)
	if err != nil {
		return 0, fmt.Errorf("source check: nftables: %w", err)
	}
	o, err := c.GetObject(&nftables.CounterObj{Table: s.table, Name: wrongSourceCounter})
	if err != nil {
		return 0, fmt.Errorf("source check: read counter: %w", err)
	}
	co, ok := o.(*nftables.CounterObj)
	if !ok {
		return 0, fmt.Errorf("source check: counter %s is a %T", wrongSourceCounter, o)
	}
	return co.Packets, nil
}

// Close deletes the table; a table already gone is fine.
func (s *SourceCheck) Close() error {
	c, err := nftables.New(s.opts...)
	if err != nil {
		return fmt.Errorf("source check: nftables: %w", err)
	}
	nfttable.Delete(c, s.table)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("source check: delete table ip %s: %w", SourceTable, err)
	}
	return nil
}

// rule: iifname dev, iiftype ether, ip saddr in subnet, ether saddr not
// the peer's: count and drop.
func (s *SourceCheck) rule(b Binding) []expr.Any {
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, s.dev)
	mask := prefixMask4(b.Subnet.Bits())
	addr := b.Subnet.Masked().Addr().As4()
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
		&expr.Meta{Key: expr.MetaKeyIIFTYPE, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint16(unix.ARPHRD_ETHER)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask[:], Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr[:]},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte(b.MAC)},
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: wrongSourceCounter},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

func prefixMask4(bits int) [4]byte {
	var v uint32
	if bits > 0 {
		v = ^uint32(0) << (32 - bits)
	}
	return [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// Neighbours returns the link-layer addresses the kernel knows for addrs
// on the underlay (entries that are resolved, even if stale).
func (k *Kernel) Neighbours(addrs []netip.Addr) (map[netip.Addr]net.HardwareAddr, error) {
	list, err := k.h.NeighList(k.link, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("routing: neighbours on %s: %w", k.dev, err)
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
