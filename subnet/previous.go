package subnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// CheckPrevious tells whether this node (attrs's PublicIP) can come back
// on previous, a subnet (of either family) it used before (e.g. from its
// subnet file). It returns an error wrapping ErrWouldRenumber when it
// cannot, because
//   - previous is not one of cfg's subnets (the network config changed),
//   - another node holds previous, or
//   - a key holding previous holds a value that is no usable lease: who
//     holds it cannot be told, and taking another subnet would renumber
//     the host, or
//   - this node's PublicIP holds another subnet (a reservation, or a lease
//     of an older run) that AcquireLease would reuse instead.
//
// A free previous, or one this node holds, is fine (nil). Other errors
// (etcd unreachable) are worth retrying. In a dual-stack network, call it
// once per family.
func (m *Manager) CheckPrevious(ctx context.Context, cfg *Config, previous netip.Prefix, attrs LeaseAttrs) error {
	if cfg == nil {
		return errors.New("check previous subnet: network config is nil")
	}
	if !cfg.Contains(previous) {
		if previous.Addr().Is6() {
			return fmt.Errorf("%w: subnet %s is not one of the network's IPv6 subnets (/%d of %s in [%s, %s]); the network config changed since",
				ErrWouldRenumber, previous, cfg.IPv6SubnetLen, cfg.IPv6Network, cfg.IPv6SubnetMin, cfg.IPv6SubnetMax)
		}
		return fmt.Errorf("%w: subnet %s is not one of network %s's subnets (/%d in [%s, %s]); the network config changed since",
			ErrWouldRenumber, previous, cfg.Network, cfg.SubnetLen, cfg.SubnetMin, cfg.SubnetMax)
	}
	l, err := m.listStored(ctx, cfg, nil)
	if err != nil {
		return err
	}
	holds := func(sl storedLease) bool {
		v4, v6, _ := parseLeaseKeyName(sl.key[len(m.subnetsPrefix()):])
		return v4 == previous || v6 == previous
	}
	for _, sl := range l.unusable {
		if holds(sl) {
			return fmt.Errorf("%w: the key of subnet %s (%s) holds no usable lease, so which node holds it cannot be told",
				ErrWouldRenumber, previous, sl.key)
		}
	}
	for _, sl := range append(l.leases, l.oneFamily...) {
		if holds(sl) && !sl.Attrs.sameHost(attrs) {
			return fmt.Errorf("%w: node %s holds subnet %s now", ErrWouldRenumber, sl.Attrs.node(), previous)
		}
	}
	a := &allocation{cfg: cfg, attrs: attrs}
	if previous.Addr().Is4() {
		a.previous = previous
	} else {
		a.previous6 = previous
	}
	if own, ok := a.findOwn(append(l.leases, l.oneFamily...)); ok && !holds(own) {
		kind := "a lease"
		if own.Reservation {
			kind = "a reservation"
		}
		return fmt.Errorf("%w: this node's PublicIP %s holds %s on subnet %s in etcd, which would be used instead of %s",
			ErrWouldRenumber, attrs.node(), kind, own.Lease, previous)
	}
	return nil
}
