package main

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/weftnet/weft/nfttable"
	"github.com/weftnet/weft/subnet/subnetfile"
)

// ipMasqTable is the nftables table weftd --ip-masq owns (family ip).
const ipMasqTable = "weft-masq"

// masqRule is one rule of the masquerading chain: a source and a
// destination test, then return (leave the packet alone) or masquerade.
type masqRule struct {
	src, dst       netip.Prefix
	notSrc, notDst bool // negate the test
	masquerade     bool // otherwise return
}

// masqRules are flanneld's --ip-masq rules for network and this node's
// subnet, in order:
//
//	network -> network            return      (overlay traffic keeps its source)
//	network -> not 224.0.0.0/4    masquerade  (containers leaving the overlay)
//	not network -> subnet         return      (e.g. hostPort DNAT to a local container)
//	not network -> network        masquerade  (the host to other nodes' containers)
func masqRules(network, subnet netip.Prefix) []masqRule {
	network, subnet = network.Masked(), subnet.Masked()
	multicast := netip.MustParsePrefix("224.0.0.0/4")
	return []masqRule{
		{src: network, dst: network},
		{src: network, dst: multicast, notDst: true, masquerade: true},
		{src: network, notSrc: true, dst: subnet},
		{src: network, notSrc: true, dst: network, masquerade: true},
	}
}

// ipMasq is the installed masquerading table; remove deletes it.
type ipMasq struct {
	table *nftables.Table
}

// masqKeeper remembers what the masquerading table was installed for, so
// that the table check can put it back; the lock keeps a check from putting
// it back while weftd removes it at exit.
type masqKeeper struct {
	mu              sync.Mutex
	on              bool
	network, subnet netip.Prefix
}

// ipMasqPresent tells whether weftd's masquerading table is in the kernel
// with its rules (false after `nft flush ruleset` or a flushed chain).
func ipMasqPresent() (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("--ip-masq: nftables: %w", err)
	}
	ok, err := nfttable.HasRules(c, &nftables.Table{Name: ipMasqTable, Family: nftables.TableFamilyIPv4}, "postrouting")
	if err != nil {
		return false, fmt.Errorf("--ip-masq: %w", err)
	}
	return ok, nil
}

// installIPMasq (re)creates weftd's masquerading table with masqRules in one
// transaction: a table left by a crashed weftd is replaced, not added to.
func installIPMasq(network, subnet netip.Prefix) (*ipMasq, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("--ip-masq: nftables: %w", err)
	}
	t := &nftables.Table{Name: ipMasqTable, Family: nftables.TableFamilyIPv4}
	nfttable.Replace(c, t)
	accept := nftables.ChainPolicyAccept
	chain := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	for _, r := range masqRules(network, subnet) {
		c.AddRule(&nftables.Rule{Table: t, Chain: chain, Exprs: r.exprs()})
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("--ip-masq: install table ip %s: %w", ipMasqTable, err)
	}
	return &ipMasq{table: t}, nil
}

// startIPMasq installs the rules when --ip-masq is set and returns what
// undoes them at exit (logging a failure); without --ip-masq both do nothing.
func (d *weftd) startIPMasq(network, subnet netip.Prefix) (stop func(), err error) {
	if !d.opts.ipMasq {
		// A weftd that ran with --ip-masq and was killed left its table:
		// without the flag nothing may stay masqueraded.
		if removed, err := removeStaleIPMasq(); err != nil {
			d.log.Debug("no stale masquerading table removed", "err", err)
		} else if removed {
			d.log.Warn("removed the masquerading table an earlier weftd --ip-masq left", "table", "ip "+ipMasqTable)
		}
		return func() {}, nil
	}
	m, err := installIPMasq(network, subnet)
	if err != nil {
		return nil, err
	}
	k := &d.state.masq
	k.mu.Lock()
	k.on, k.network, k.subnet = true, network, subnet
	k.mu.Unlock()
	d.log.Info("masquerading traffic leaving the overlay", "network", network, "table", "ip "+ipMasqTable)
	return func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		k.on = false // the table check must not put it back
		if err := m.remove(); err != nil {
			d.log.Warn("remove masquerading rules", "err", err)
		}
	}, nil
}

// writeSubnetFiles writes the subnet file and, with --flannel-subnet-file,
// the same values in flannel's format.
func (d *weftd) writeSubnetFiles(env subnetfile.Env) error {
	if err := subnetfile.Write(d.opts.subnetFile, env); err != nil {
		return err
	}
	if d.opts.flannelSubnetFile == "" {
		return nil
	}
	return subnetfile.WriteFlannel(d.opts.flannelSubnetFile, env)
}

// remove deletes the table; a table already gone is fine.
func (m *ipMasq) remove() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("--ip-masq: nftables: %w", err)
	}
	nfttable.Delete(c, m.table)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("--ip-masq: remove table ip %s: %w", ipMasqTable, err)
	}
	return nil
}

// removeStaleIPMasq deletes weftd's masquerading table if there is one and
// reports whether there was.
func removeStaleIPMasq() (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return false, err
	}
	for _, t := range tables {
		if t.Name == ipMasqTable {
			return true, (&ipMasq{table: t}).remove()
		}
	}
	return false, nil
}

func (r masqRule) exprs() []expr.Any {
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
