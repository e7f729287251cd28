package testbed

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
)

// UnderlayDev is the name of every host's underlay device.
const UnderlayDev = "eth0"

// underlayBase is the underlay network address; host i (from 1) gets .i.
var underlayBase = netip.MustParseAddr("192.0.2.0")

// Options configure a Bed.
type Options struct {
	// MTU of the underlay links (default 1500).
	MTU int
}

// Host is a namespace with an underlay device and its address.
type Host struct {
	NS  *NS
	Dev string
	IP  netip.Addr
	MTU int
}

// Bed is a set of hosts on one underlay: a veth pair for two hosts, a
// bridge in a "switch" namespace for three or more.
type Bed struct {
	Hosts []*Host
	// Switch holds the bridge (nil for a two-host bed).
	Switch *NS
	// Prefix is the underlay network (192.0.2.0/24).
	Prefix netip.Prefix

	mu     sync.Mutex
	procs  []*Proc
	closed bool
}

// NewBed creates hosts namespaces named prefix+random and connects them on
// 192.0.2.0/24 (host i has 192.0.2.i on eth0). On error everything created
// so far is removed.
func NewBed(prefix string, hosts int, opts Options) (*Bed, error) {
	if hosts < 2 || hosts > 250 {
		return nil, fmt.Errorf("testbed: %d hosts: want 2..250", hosts)
	}
	if opts.MTU == 0 {
		opts.MTU = 1500
	}
	b := &Bed{Prefix: netip.PrefixFrom(underlayBase, 24)}
	if err := b.build(prefix, hosts, opts); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (b *Bed) build(prefix string, hosts int, opts Options) error {
	ip := underlayBase
	for i := 0; i < hosts; i++ {
		ns, err := NewNS(prefix)
		if err != nil {
			return err
		}
		ip = ip.Next()
		b.Hosts = append(b.Hosts, &Host{NS: ns, Dev: UnderlayDev, IP: ip, MTU: opts.MTU})
	}
	if hosts == 2 {
		if err := b.linkPair(); err != nil {
			return err
		}
	} else if err := b.linkBridge(prefix); err != nil {
		return err
	}
	for _, h := range b.Hosts {
		if err := h.configure(b.Prefix.Bits()); err != nil {
			return err
		}
	}
	return nil
}

// linkPair creates the veth pair directly inside the two namespaces, so
// nothing ever appears in the root namespace.
func (b *Bed) linkPair() error {
	h1, h2 := b.Hosts[0], b.Hosts[1]
	return ipCmd("-n", h1.NS.Name, "link", "add", h1.Dev, "mtu", strconv.Itoa(h1.MTU), "type", "veth",
		"peer", "name", h2.Dev, "mtu", strconv.Itoa(h2.MTU), "netns", h2.NS.Name)
}

func (b *Bed) linkBridge(prefix string) error {
	sw, err := NewNS(prefix + "s")
	if err != nil {
		return err
	}
	b.Switch = sw
	mtu := strconv.Itoa(b.Hosts[0].MTU)
	if err := ipCmd("-n", sw.Name, "link", "add", "br0", "mtu", mtu, "type", "bridge"); err != nil {
		return err
	}
	if err := ipCmd("-n", sw.Name, "link", "set", "br0", "up"); err != nil {
		return err
	}
	for i, h := range b.Hosts {
		port := "p" + strconv.Itoa(i+1)
		if err := ipCmd("-n", sw.Name, "link", "add", port, "mtu", mtu, "type", "veth",
			"peer", "name", h.Dev, "mtu", mtu, "netns", h.NS.Name); err != nil {
			return err
		}
		if err := ipCmd("-n", sw.Name, "link", "set", port, "master", "br0", "up"); err != nil {
			return err
		}
	}
	return nil
}

func (h *Host) configure(bits int) error {
	addr := netip.PrefixFrom(h.IP, bits).String()
	if err := ipCmd("-n", h.NS.Name, "addr", "add", addr, "dev", h.Dev); err != nil {
		return err
	}
	return ipCmd("-n", h.NS.Name, "link", "set", h.Dev, "up")
}

func ipCmd(args ...string) error {
	_, err := run(context.Background(), "ip", args...)
	return err
}

// Close stops every process started with Start and deletes every
// namespace of the bed, killing whatever still runs inside. It is
// idempotent and safe to call on a half-built bed.
func (b *Bed) Close() error {
	b.mu.Lock()
	procs := b.procs
	b.procs = nil
	b.closed = true
	b.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop()
		}()
	}
	wg.Wait()
	for _, h := range b.Hosts {
		if err := h.NS.Delete(); err != nil {
			errs = append(errs, err)
		}
	}
	if b.Switch != nil {
		if err := b.Switch.Delete(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
