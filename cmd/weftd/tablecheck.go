package main

import (
	"context"
	"time"

	"github.com/weftnet/weft/guard"
	"github.com/weftnet/weft/guard/masq"
)

// tableCheckInterval is how often weftd checks that its nftables tables
// are still in the kernel (as it does for its routes).
const tableCheckInterval = 5 * time.Second

// keepTables puts back the container guard's table (and, with --ip-masq,
// the masquerading table) when they went missing (`nft flush ruleset`,
// which nftables.service runs at every start and reload, deletes every
// table),
// every interval until ctx ends. Until then containers could forge sources.
// (The policy engine checks its own tables: policy/engine.)
func (d *weftd) keepTables(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.checkGuardTable()
		d.checkIPMasqTable()
	}
}

// checkGuardTable reinstalls the guard when its tables are not what weftd
// installed: gone (nft flush ruleset), a chain flushed, one rule deleted or
// another inserted. It compares the kernel's tables read back
// (guard.Contents) with the read taken right after installing.
func (d *weftd) checkGuardTable() {
	change, err := d.state.guard.Check()
	switch {
	case err != nil && change == "":
		d.log.Warn("cannot check the container guard's table", "err", err)
	case err != nil:
		d.log.Error("container guard's table was changed by someone else and could not be put back", "table", guard.DefaultTable, "change", change, "err", err)
	case change != "":
		d.log.Warn("container guard's table was changed by someone else (nft flush ruleset, a deleted or added rule?); put back", "table", guard.DefaultTable, "change", change)
	}
}

// checkIPMasqTable reinstalls the masquerading table (--ip-masq) if it is
// gone: until then containers leave the overlay with their own addresses.
func (d *weftd) checkIPMasqTable() {
	const what, table = "masquerading table", "ip/ip6 " + masq.Table
	switch gone, err := d.state.masq.Restore(); {
	case err != nil && !gone:
		d.log.Warn("cannot check the "+what, "err", err)
	case err != nil:
		d.log.Error(what+" went missing and could not be put back", "table", table, "err", err)
	case gone:
		d.log.Warn(what+" went missing (nft flush ruleset?); put back", "table", table)
	}
}
