package main

import (
	"github.com/weftnet/weft/guard/masq"
	"github.com/weftnet/weft/subnet/subnetfile"
)

// ipMasqTable is the table --ip-masq installs (for the flag's help).
const ipMasqTable = masq.Table

// startIPMasq installs the masquerading rules (guard/masq) when --ip-masq
// is set and returns what undoes them at exit (logging a failure); without
// --ip-masq it removes a table a killed weftd --ip-masq left.
func (d *weftd) startIPMasq(p masq.Prefixes) (stop func(), err error) {
	if !d.opts.ipMasq {
		// A weftd that ran with --ip-masq and was killed left its table:
		// without the flag nothing may stay masqueraded.
		if removed, err := masq.RemoveStale(); err != nil {
			d.log.Debug("no stale masquerading table removed", "err", err)
		} else if removed {
			d.log.Warn("removed the masquerading tables an earlier weftd --ip-masq left", "table", masq.Table)
		}
		return func() {}, nil
	}
	if err := d.state.masq.Install(p); err != nil {
		return nil, err
	}
	d.log.Info("masquerading traffic leaving the overlay", "network", p.Network, "ipv6Network", p.Network6, "table", masq.Table)
	return func() {
		if err := d.state.masq.Remove(); err != nil { // the table check no longer puts it back
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
