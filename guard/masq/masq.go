// Package masq is weftd --ip-masq: nftables table ip weft-masq with
// flanneld's --ip-masq rules (containers leaving the overlay network are
// masqueraded, overlay traffic keeps its sources), installed, checked,
// put back and removed as a whole.
package masq

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/weftnet/weft/nfttable"
)

// Table is the nftables table weftd --ip-masq owns (family ip).
const Table = "weft-masq"

// rule is one rule of the masquerading chain: a source and a destination
// test, then return (leave the packet alone) or masquerade.
type rule struct {
	src, dst       netip.Prefix
	notSrc, notDst bool // negate the test
	masquerade     bool // otherwise return
}

// rules are flanneld's --ip-masq rules for network and this node's subnet,
// in order:
//
//	network -> network            return      (overlay traffic keeps its source)
//	network -> not 224.0.0.0/4    masquerade  (containers leaving the overlay)
//	not network -> subnet         return      (e.g. hostPort DNAT to a local container)
//	not network -> network        masquerade  (the host to other nodes' containers)
func rules(network, subnet netip.Prefix) []rule {
	network, subnet = network.Masked(), subnet.Masked()
	multicast := netip.MustParsePrefix("224.0.0.0/4")
	return []rule{
		{src: network, dst: network},
		{src: network, dst: multicast, notDst: true, masquerade: true},
		{src: network, notSrc: true, dst: subnet},
		{src: network, notSrc: true, dst: network, masquerade: true},
	}
}

var table = &nftables.Table{Name: Table, Family: nftables.TableFamilyIPv4}

// Present tells whether the masquerading table is in the kernel with its
// rules (false after `nft flush ruleset` or a flushed chain).
func Present() (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("--ip-masq: nftables: %w", err)
	}
	ok, err := nfttable.HasRules(c, table, "postrouting")
	if err != nil {
		return false, fmt.Errorf("--ip-masq: %w", err)
	}
	return ok, nil
}

// Install (re)creates the masquerading table with the rules for network
// and subnet in one transaction: a table left by a crashed weftd is
// replaced, not added to.
func Install(network, subnet netip.Prefix) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("--ip-masq: nftables: %w", err)
	}
	nfttable.Replace(c, table)
	accept := nftables.ChainPolicyAccept
	chain := c.AddChain(&nftables.Chain{Name: "postrouting", Table: table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	for _, r := range rules(network, subnet) {
		c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: r.exprs()})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("--ip-masq: install table ip %s: %w", Table, err)
	}
	return nil
}

// Remove deletes the table; a table already gone is fine.
func Remove() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("--ip-masq: nftables: %w", err)
	}
	nfttable.Delete(c, table)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("--ip-masq: remove table ip %s: %w", Table, err)
	}
	return nil
}

// RemoveStale deletes the masquerading table if there is one and reports
// whether there was (a weftd --ip-masq that was killed left it).
func RemoveStale() (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return false, err
	}
	for _, t := range tables {
		if t.Name == Table {
			return true, Remove()
		}
	}
	return false, nil
}

// Keeper remembers what the table was installed for, so that a table
// check can put it back; its lock keeps a check from putting it back while
// weftd removes it at exit. The zero value is off.
type Keeper struct {
	mu              sync.Mutex
	on              bool
	network, subnet netip.Prefix
}

// Install installs the table and remembers it.
func (k *Keeper) Install(network, subnet netip.Prefix) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := Install(network, subnet); err != nil {
		return err
	}
	k.on, k.network, k.subnet = true, network, subnet
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
	ok, err := Present()
	if err != nil || ok {
		return false, err
	}
	return true, Install(k.network, k.subnet)
}

func (r rule) exprs() []expr.Any {
	const srcOffset, dstOffset = 12, 16
	e := prefixMatch(srcOffset, r.src, r.notSrc)
	e = append(e, prefixMatch(dstOffset, r.dst, r.notDst)...)
	if r.masquerade {
		return append(e, &expr.Masq{FullyRandom: true})
	}
	return append(e, &expr.Verdict{Kind: expr.VerdictReturn})
}

// prefixMatch tests the IPv4 address at offset of the network header
// against p (or its complement).
func prefixMatch(offset uint32, p netip.Prefix, negate bool) []expr.Any {
	m := prefixMaskBytes(p.Bits())
	a := p.Masked().Addr().As4()
	op := expr.CmpOpEq
	if negate {
		op = expr.CmpOpNeq
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: op, Register: 1, Data: a[:]},
	}
}

func prefixMaskBytes(bits int) []byte {
	v := uint32(0)
	if bits > 0 {
		v = ^uint32(0) << (32 - bits)
	}
	return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}
