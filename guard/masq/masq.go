// Package masq is weftd --ip-masq: nftables tables ip and ip6 weft-masq
// with flanneld's --ip-masq rules for each family the network has
// (containers leaving the overlay network are masqueraded, overlay traffic
// keeps its sources), installed, checked, put back and removed as a whole.
package masq

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/weftnet/weft/nfttable"
)

// Table is the name of the nftables tables weftd --ip-masq owns (families
// ip and ip6).
const Table = "weft-masq"

// Prefixes are what the rules are for: the overlay network and this node's
// subnet, per family (both of a family invalid when the network lacks it).
type Prefixes struct {
	Network, Subnet   netip.Prefix // IPv4
	Network6, Subnet6 netip.Prefix // IPv6
}

// Validate checks that each family has both prefixes or neither, of its
// family, the subnet inside the network, and that there is one.
func (p Prefixes) Validate() error {
	for _, f := range []struct {
		name            string
		network, subnet netip.Prefix
		v6              bool
	}{{"IPv4", p.Network, p.Subnet, false}, {"IPv6", p.Network6, p.Subnet6, true}} {
		if f.network.IsValid() != f.subnet.IsValid() {
			return fmt.Errorf("--ip-masq: %s network %v and subnet %v: give both or neither", f.name, f.network, f.subnet)
		}
		if f.network.IsValid() && (f.network.Addr().Is6() != f.v6 || f.subnet.Addr().Is6() != f.v6 ||
			!f.network.Contains(f.subnet.Addr()) || f.network.Bits() > f.subnet.Bits()) {
			return fmt.Errorf("--ip-masq: %s subnet %v is not inside network %v", f.name, f.subnet, f.network)
		}
	}
	if !p.Network.IsValid() && !p.Network6.IsValid() {
		return errors.New("--ip-masq: no network of either family")
	}
	return nil
}

// tables are the tables p installs (one per family it has).
func (p Prefixes) tables() []*nftables.Table {
	var out []*nftables.Table
	if p.Network.IsValid() {
		out = append(out, table)
	}
	if p.Network6.IsValid() {
		out = append(out, table6)
	}
	return out
}

// rule is one rule of the masquerading chain: a source and a destination
// test, then return (leave the packet alone) or masquerade.
type rule struct {
	src, dst       netip.Prefix
	notSrc, notDst bool // negate the test
	masquerade     bool // otherwise return
}

// rules are flanneld's --ip-masq rules for network and this node's subnet,
// in order (for IPv6 the same with ff00::/8, as flanneld's MasqIP6Rules):
//
//	network -> network            return      (overlay traffic keeps its source)
//	network -> not 224.0.0.0/4    masquerade  (containers leaving the overlay)
//	not network -> subnet         return      (e.g. hostPort DNAT to a local container)
//	not network -> network        masquerade  (the host to other nodes' containers)
func rules(network, subnet netip.Prefix) []rule {
	network, subnet = network.Masked(), subnet.Masked()
	multicast := netip.MustParsePrefix("224.0.0.0/4")
	if network.Addr().Is6() {
		multicast = netip.MustParsePrefix("ff00::/8")
	}
	return []rule{
		{src: network, dst: network},
		{src: network, dst: multicast, notDst: true, masquerade: true},
		{src: network, notSrc: true, dst: subnet},
		{src: network, notSrc: true, dst: network, masquerade: true},
	}
}

var (
	table  = &nftables.Table{Name: Table, Family: nftables.TableFamilyIPv4}
	table6 = &nftables.Table{Name: Table, Family: nftables.TableFamilyIPv6}
)

// Present tells whether the masquerading tables for p are in the kernel
// with their rules (false after `nft flush ruleset` or a flushed chain).
func Present(p Prefixes) (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("--ip-masq: nftables: %w", err)
	}
	for _, t := range p.tables() {
		ok, err := nfttable.HasRules(c, t, "postrouting")
		if err != nil {
			return false, fmt.Errorf("--ip-masq: %w", err)
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

// Install (re)creates the masquerading tables with the rules for each
// family of p in one transaction: a table left by a crashed weftd is
// replaced, not added to, and one of a family p lacks is deleted.
func Install(p Prefixes) error {
	if err := p.Validate(); err != nil {
		return err
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("--ip-masq: nftables: %w", err)
	}
	for _, f := range []struct {
		t               *nftables.Table
		network, subnet netip.Prefix
	}{{table, p.Network, p.Subnet}, {table6, p.Network6, p.Subnet6}} {
		if !f.network.IsValid() {
			nfttable.Delete(c, f.t)
			continue
		}
		nfttable.Replace(c, f.t)
		accept := nftables.ChainPolicyAccept
		chain := c.AddChain(&nftables.Chain{Name: "postrouting", Table: f.t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
		for _, r := range rules(f.network, f.subnet) {
			c.AddRule(&nftables.Rule{Table: f.t, Chain: chain, Exprs: r.exprs()})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("--ip-masq: install tables ip/ip6 %s: %w", Table, err)
	}
	return nil
}

// Remove deletes the tables; a table already gone is fine.
func Remove() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("--ip-masq: nftables: %w", err)
	}
	nfttable.Delete(c, table)
	nfttable.Delete(c, table6)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("--ip-masq: remove tables ip/ip6 %s: %w", Table, err)
	}
	return nil
}

// RemoveStale deletes the masquerading tables if there are any and reports
// whether there were (a weftd --ip-masq that was killed left them).
func RemoveStale() (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, err
	}
	for _, family := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		tables, err := c.ListTablesOfFamily(family)
		if err != nil {
			return false, err
		}
		for _, t := range tables {
			if t.Name == Table {
				return true, Remove()
			}
		}
	}
	return false, nil
}

// Keeper remembers what the table was installed for, so that a table
// check can put it back; its lock keeps a check from putting it back while
// weftd removes it at exit. The zero value is off.
type Keeper struct {
	mu       sync.Mutex
	on       bool
	prefixes Prefixes
}

// Install installs the tables and remembers them.
func (k *Keeper) Install(p Prefixes) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := Install(p); err != nil {
		return err
	}
	k.on, k.prefixes = true, p
	return nil
}

// Remove forgets the table (no check puts it back) and removes it.
func (k *Keeper) Remove() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.on = false
	return Remove()
}

// Restore puts the table back, if it is installed, when it is gone (or
// its chain flushed): gone tells whether it was; err is the failure to
// check (gone false) or to put it back (gone true).
func (k *Keeper) Restore() (gone bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.on {
		return false, nil
	}
	ok, err := Present(k.prefixes)
	if err != nil || ok {
		return false, err
	}
	return true, Install(k.prefixes)
}

func (r rule) exprs() []expr.Any {
	srcOffset, dstOffset := uint32(12), uint32(16)
	if r.src.Addr().Is6() {
		srcOffset, dstOffset = 8, 24
	}
	e := prefixMatch(srcOffset, r.src, r.notSrc)
	e = append(e, prefixMatch(dstOffset, r.dst, r.notDst)...)
	if r.masquerade {
		return append(e, &expr.Masq{FullyRandom: true})
	}
	return append(e, &expr.Verdict{Kind: expr.VerdictReturn})
}

// prefixMatch tests the address at offset of the network header against
// p (or its complement), in p's family.
func prefixMatch(offset uint32, p netip.Prefix, negate bool) []expr.Any {
	a := p.Masked().Addr().AsSlice()
	m := make([]byte, len(a))
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	op := expr.CmpOpEq
	if negate {
		op = expr.CmpOpNeq
	}
	n := uint32(len(a))
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: m, Xor: make([]byte, n)},
		&expr.Cmp{Op: op, Register: 1, Data: a},
	}
}
