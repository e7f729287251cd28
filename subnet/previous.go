package subnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// CheckPrevious tells whether this node (attrs.PublicIP) can come back on
// previous, the subnet it used before (e.g. from its subnet file). It
// returns an error wrapping ErrWouldRenumber when it cannot, because
//   - previous is not one of cfg's subnets (the network config changed),
//   - another node holds previous, or
//   - previous's key holds a value that is no usable lease: who holds it
//     cannot be told, and taking another subnet would renumber the host, or
//   - this node's PublicIP holds another subnet (a reservation, or a lease
//     of an older run) that AcquireLease would reuse instead.
//
// A free previous, or one this node holds, is fine (nil). Other errors
// (etcd unreachable) are worth retrying.
func (m *Manager) CheckPrevious(ctx context.Context, cfg *Config, previous netip.Prefix, attrs LeaseAttrs) error {
	if cfg == nil {
		return errors.New("check previous subnet: network config is nil")
	}
	if !cfg.Contains(previous) {
		return fmt.Errorf("%w: subnet %s is not one of network %s's subnets (/%d in [%s, %s]); the network config changed since",
			ErrWouldRenumber, previous, cfg.Network, cfg.SubnetLen, cfg.SubnetMin, cfg.SubnetMax)
	}
	key := m.LeaseKey(previous)
	resp, err := m.getKey(ctx, key)
	if err != nil {
		return fmt.Errorf("read lease %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return m.checkOwnElsewhere(ctx, cfg, previous, attrs)
	}
	holder, err := parseLeaseAttrs(resp.Kvs[0].Value)
	if err != nil {
		return fmt.Errorf("%w: the key of subnet %s (%s) holds no usable lease, so which node holds it cannot be told: %v",
			ErrWouldRenumber, previous, key, err)
	}
	if holder.PublicIP != attrs.PublicIP {
		return fmt.Errorf("%w: node %s holds subnet %s now", ErrWouldRenumber, holder.PublicIP, previous)
	}
	return m.checkOwnElsewhere(ctx, cfg, previous, attrs)
}

// checkOwnElsewhere refuses when AcquireLease would reuse another subnet
// that this node's PublicIP holds (a reservation, or a lease of an older
// run) instead of previous.
func (m *Manager) checkOwnElsewhere(ctx context.Context, cfg *Config, previous netip.Prefix, attrs LeaseAttrs) error {
	l, err := m.listStored(ctx, cfg, nil)
	if err != nil {
		return err
	}
	a := &allocation{cfg: cfg, attrs: attrs, previous: previous}
	if own, ok := a.findOwn(l.leases); ok && own.Subnet != previous {
		kind := "a lease"
		if own.Reservation {
			kind = "a reservation"
		}
		return fmt.Errorf("%w: this node's PublicIP %s holds %s on subnet %s in etcd, which would be used instead of %s",
			ErrWouldRenumber, attrs.PublicIP, kind, own.Subnet, previous)
	}
	return nil
}
