package subnet

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
)

// checkFamilies checks a lease's subnets against the network's families.
// Every family the network has must have its subnet in the key, of the
// configured length inside its network; else err says why, and missing
// tells that the key lacks a family (an IPv4 key in a dual-stack network:
// it is skipped, never renumbered). The subnet of a family the network does
// not have is dropped from l (a dual-stack key in an IPv4 network is that
// node's IPv4 lease, as flanneld reads it).
func (c *Config) checkFamilies(l *Lease) (missing bool, err error) {
	name := leaseKeyName(l.Subnet, l.IPv6Subnet)
	if c.HasIPv4() {
		if !l.Subnet.IsValid() {
			return true, fmt.Errorf("%s: no IPv4 subnet in a network with IPv4 (%s)", name, c.Network)
		}
		if !c.fits(l.Subnet) {
			return false, fmt.Errorf("%s: not a /%d of network %s", name, c.SubnetLen, c.Network)
		}
	} else {
		l.Subnet = netip.Prefix{}
	}
	if c.HasIPv6() {
		if !l.IPv6Subnet.IsValid() {
			return true, fmt.Errorf("%s: no IPv6 subnet in a dual-stack network (IPv6Network %s)", name, c.IPv6Network)
		}
		if !c.fits(l.IPv6Subnet) {
			return false, fmt.Errorf("%s: not a /%d of IPv6Network %s", name, c.IPv6SubnetLen, c.IPv6Network)
		}
	} else {
		l.IPv6Subnet = netip.Prefix{}
	}
	return false, nil
}

// maxFamilyLogged bounds the keys familyLog remembers.
const maxFamilyLogged = 4096

// familyLog logs each key that lacks a family of the network once (per
// Manager): such keys are expected while a network turns dual-stack, and
// every listing would log them again.
type familyLog struct {
	mu     sync.Mutex
	logged map[string]struct{}
}

func (f *familyLog) once(log *slog.Logger, key string, err error) {
	f.mu.Lock()
	if f.logged == nil {
		f.logged = map[string]struct{}{}
	}
	_, seen := f.logged[key]
	if !seen && len(f.logged) < maxFamilyLogged {
		f.logged[key] = struct{}{}
	}
	f.mu.Unlock()
	if !seen {
		log.Warn("skipping a lease without every address family of the network (its node must restart with the network's config to take part; its subnets stay its own)", "key", key, "err", err)
	}
}

// dropOtherFamilies drops from l the subnet of a family the network does
// not have.
func (c *Config) dropOtherFamilies(l *Lease) {
	if !c.HasIPv4() {
		l.Subnet = netip.Prefix{}
	}
	if !c.HasIPv6() {
		l.IPv6Subnet = netip.Prefix{}
	}
}
