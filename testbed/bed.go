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

// underlayBase6 is the IPv6 underlay network (Options.IPv6); host i gets
// 2001:db8::i.
var underlayBase6 = netip.MustParseAddr("2001:db8::")

// remoteBase is the second underlay of a routed bed; host i gets .i.
var remoteBase = netip.MustParseAddr("198.51.100.0")

// routerHost is the router's host number on both underlays (.254).
const routerHost = 254

// Options configure a Bed.
type Options struct {
	// MTU of the underlay links (default 1500).
	MTU int
	// Remote puts the last Remote hosts on a second underlay,
	// 198.51.100.0/24, behind a router namespace that also sits on
	// 192.0.2.0/24 with the other hosts (at .254 on both). Every host
	// then has a default route through the router. 0: one flat underlay.
	Remote int
	// IPv6 gives every host of a flat bed an IPv6 underlay address too:
	// 2001:db8::i/64 on eth0, without duplicate address detection (usable
	// at once).
	IPv6 bool
	// IPv6Only is IPv6 without the IPv4 addresses: an IPv6-only
	// underlay (Host.IP invalid).
	IPv6Only bool
}

// Host is a namespace with an underlay device and its address.
type Host struct {
	NS  *NS
	Dev string
	IP  netip.Addr
	// IPv6 is the host's IPv6 underlay address (Options.IPv6; invalid
	// otherwise).
	IPv6 netip.Addr
	MTU  int
	// Gateway is the router's address on the host's underlay (routed
	// beds only; invalid otherwise).
	Gateway netip.Addr
}

// Bed is a set of hosts on one underlay: a veth pair for two hosts, a
// bridge in a "switch" namespace for three or more. A routed bed
// (Options.Remote) has two underlays, two bridges in the switch, and a
// router between them.
type Bed struct {
	Hosts []*Host
	// Switch holds the bridges (nil for a two-host flat bed).
	Switch *NS
	// Router joins the two underlays of a routed bed (nil otherwise).
	Router *NS
	// Prefix is the underlay network (192.0.2.0/24).
	Prefix netip.Prefix
	// RemotePrefix is the second underlay of a routed bed (198.51.100.0/24).
	RemotePrefix netip.Prefix

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
	if opts.IPv6Only {
		opts.IPv6 = true
	}
	if opts.IPv6 && opts.Remote > 0 {
		return nil, fmt.Errorf("testbed: IPv6 underlay addresses on a routed bed are not supported")
	}
	if opts.Remote < 0 || opts.Remote >= hosts {
		return nil, fmt.Errorf("testbed: %d remote hosts of %d: want 0..%d", opts.Remote, hosts, hosts-1)
	}
	if opts.MTU == 0 {
		opts.MTU = 1500
	}
	b := &Bed{Prefix: netip.PrefixFrom(underlayBase, 24), RemotePrefix: netip.PrefixFrom(remoteBase, 24)}
	if err := b.build(prefix, hosts, opts); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (b *Bed) build(prefix string, hosts int, opts Options) error {
	for i := 0; i < hosts; i++ {
		ns, err := NewNS(prefix)
		if err != nil {
			return err
		}
		h := &Host{NS: ns, Dev: UnderlayDev, IP: hostAddr(underlayBase, i+1), MTU: opts.MTU}
		if opts.IPv6 {
			b := underlayBase6.As16()
			b[15] = byte(i + 1)
			h.IPv6 = netip.AddrFrom16(b)
		}
		if opts.IPv6Only {
			h.IP = netip.Addr{}
		}
		if opts.Remote > 0 {
			h.Gateway = hostAddr(underlayBase, routerHost)
			if i >= hosts-opts.Remote {
				h.IP, h.Gateway = hostAddr(remoteBase, i+1), hostAddr(remoteBase, routerHost)
			}
		}
		b.Hosts = append(b.Hosts, h)
	}
	if opts.Remote > 0 {
		return b.buildRouted(prefix, opts)
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

// buildRouted links the local hosts and the router's eth0 on br0, the
// remote hosts and the router's eth1 on br1, and makes the router forward.
func (b *Bed) buildRouted(prefix string, opts Options) error {
	sw, err := NewNS(prefix + "s")
	if err != nil {
		return err
	}
	b.Switch = sw
	if b.Router, err = NewNS(prefix + "r"); err != nil {
		return err
	}
	mtu := strconv.Itoa(opts.MTU)
	for _, br := range []string{"br0", "br1"} {
		if err := ipCmd("-n", sw.Name, "link", "add", br, "mtu", mtu, "type", "bridge"); err != nil {
			return err
		}
		if err := ipCmd("-n", sw.Name, "link", "set", br, "up"); err != nil {
			return err
		}
	}
	router := []*Host{
		{NS: b.Router, Dev: "eth0", IP: hostAddr(underlayBase, routerHost), MTU: opts.MTU},
		{NS: b.Router, Dev: "eth1", IP: hostAddr(remoteBase, routerHost), MTU: opts.MTU},
	}
	for i, h := range append(b.Hosts, router...) {
		br := "br0"
		if b.RemotePrefix.Contains(h.IP) {
			br = "br1"
		}
		port := "p" + strconv.Itoa(i+1)
		if err := ipCmd("-n", sw.Name, "link", "add", port, "mtu", mtu, "type", "veth",
			"peer", "name", h.Dev, "mtu", mtu, "netns", h.NS.Name); err != nil {
			return err
		}
		if err := ipCmd("-n", sw.Name, "link", "set", port, "master", br, "up"); err != nil {
			return err
		}
		if err := h.configure(24); err != nil {
			return err
		}
	}
	if _, err := b.Router.Run(context.Background(), "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		return err
	}
	return nil
}

func (h *Host) configure(bits int) error {
	if h.IP.IsValid() {
		addr := netip.PrefixFrom(h.IP, bits).String()
		if err := ipCmd("-n", h.NS.Name, "addr", "add", addr, "dev", h.Dev); err != nil {
			return err
		}
	}
	if h.IPv6.IsValid() {
		if err := ipCmd("-n", h.NS.Name, "addr", "add", netip.PrefixFrom(h.IPv6, 64).String(), "dev", h.Dev, "nodad"); err != nil {
			return err
		}
	}
	if err := ipCmd("-n", h.NS.Name, "link", "set", h.Dev, "up"); err != nil {
		return err
	}
	if h.Gateway.IsValid() {
		return ipCmd("-n", h.NS.Name, "route", "add", "default", "via", h.Gateway.String(), "dev", h.Dev)
	}
	return nil
}

// hostAddr is host number n of the /24 starting at base.
func hostAddr(base netip.Addr, n int) netip.Addr {
	b := base.As4()
	b[3] = byte(n)
	return netip.AddrFrom4(b)
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
	for _, ns := range []*NS{b.Switch, b.Router} {
		if ns == nil {
			continue
		}
		if err := ns.Delete(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
