package vxlan

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/routing"
	"github.com/weftnet/weft/subnet"
)

// CheckInterval is how often the device, its entries and the direct
// routes are compared with the leases and put back (deleted by hand,
// flushed with the underlay).
const CheckInterval = 5 * time.Second

// Modes a peer can have.
const (
	ModeVXLAN  = "vxlan"
	ModeDirect = "direct"
)

// Backend is the vxlan backend of one node.
type Backend struct {
	node backend.Node
	cfg  Config
	log  *slog.Logger
	mac  MAC // this node's VtepMAC, chosen by LeaseAttrs
	mac6 MAC // the IPv6 side's (flannel-v6.<VNI>), with EnableIPv6

	mu     sync.Mutex // everything below: Apply, the check, Close
	h      *netlink.Handle
	dev    *Device
	direct *routing.Kernel // nil without DirectRouting
	onLink []netip.Prefix
	leases map[netip.Prefix]subnet.Lease
	logged map[string]bool      // skipped leases already logged, by subnet+detail
	held   map[MAC]netip.Prefix // the subnet each VtepMAC was last installed for (Want)
	dev6   *Device              // flannel-v6.<VNI>; nil without EnableIPv6
	held6  map[MAC]netip.Prefix
	chosen [2]map[netip.Prefix]Peer // the peer kept per subnet (OnePerSubnet), IPv4 and IPv6

	peers   atomic.Pointer[[]backend.Peer]
	skipped [6]atomic.Uint64 // by SkipReasons' index
}

// Factory is the vxlan entry of a backend.Registry.
func Factory() backend.Factory {
	return backend.Factory{
		Check: func(cfg *subnet.Config) error { _, err := configOf(cfg); return err },
		New: func(node backend.Node) (backend.Backend, error) {
			cfg, err := configOf(node.Config)
			if err != nil {
				return nil, backend.ConfigError(err)
			}
			return New(node, cfg), nil
		},
	}
}

// New makes the backend; it does not touch the host.
func New(node backend.Node, cfg Config) *Backend {
	b := &Backend{node: node, cfg: cfg, log: node.Log, leases: map[netip.Prefix]subnet.Lease{}, logged: map[string]bool{}}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.peers.Store(&[]backend.Peer{})
	return b
}

// LeaseAttrs publishes the VNI and the VtepMAC: the MAC of a device
// flannel.<VNI> that can be kept (left by flanneld or an earlier weftd, so
// that the other nodes' entries stay right across the swap), else a new
// random one that Start gives the device. With IPv6 the same for
// flannel-v6.<VNI> in BackendV6Data; an IPv6-only network (EnableIPv4
// false) has only that side, as flanneld: no PublicIP, no BackendData.
func (b *Backend) LeaseAttrs() (subnet.LeaseAttrs, error) {
	attrs := subnet.LeaseAttrs{BackendType: Type}
	if b.node.Config.HasIPv4() {
		if err := b.leaseAttrs4(&attrs); err != nil {
			return subnet.LeaseAttrs{}, err
		}
	}
	if !b.node.Config.HasIPv6() {
		return attrs, nil
	}
	// The IPv6 side, as flanneld: its own device, MAC and BackendV6Data,
	// carried over the IPv6 underlay.
	if !b.node.Underlay.PublicIPv6.IsValid() {
		return subnet.LeaseAttrs{}, backend.ConfigError(errors.New("vxlan: with EnableIPv6 the IPv6 device " + b.cfg.DeviceNameV6() + " carries IPv6 over the IPv6 underlay, and this node has no IPv6 underlay address (PublicIPv6)"))
	}
	if b.mac6 == (MAC{}) {
		m, err := b.existingMACOf(b.spec6())
		if err != nil {
			return subnet.LeaseAttrs{}, err
		}
		if m == (MAC{}) {
			if err := portFreeOn("udp6", b.cfg.Port); err != nil {
				return subnet.LeaseAttrs{}, err
			}
			if m, err = randomMAC(); err != nil {
				return subnet.LeaseAttrs{}, err
			}
		}
		b.mac6 = m
	}
	attrs.PublicIPv6 = b.node.Underlay.PublicIPv6.String()
	attrs.BackendV6Data = LeaseData{VNI: b.cfg.VNI, VtepMAC: b.mac6}.Marshal()
	return attrs, nil
}

// leaseAttrs4 sets the IPv4 side's attributes: PublicIP and BackendData.
func (b *Backend) leaseAttrs4(attrs *subnet.LeaseAttrs) error {
	if b.mac == (MAC{}) {
		m, err := b.existingMAC()
		if err != nil {
			return err
		}
		if m == (MAC{}) {
			// A new device: its port must be free (checked before the
			// lease is taken, so that nothing is half set up).
			if err := portFree(b.cfg.Port); err != nil {
				return err
			}
			if m, err = randomMAC(); err != nil {
				return err
			}
		}
		b.mac = m
	}
	attrs.PublicIP = b.node.Underlay.PublicIP.String()
	attrs.BackendData = LeaseData{VNI: b.cfg.VNI, VtepMAC: b.mac}.Marshal()
	return nil
}

// existingMAC is the MAC of a compatible flannel.<VNI>, zero without one.
func (b *Backend) existingMAC() (MAC, error) { return b.existingMACOf(b.spec()) }

// existingMACOf is the MAC of a compatible device of spec, zero without
// one.
func (b *Backend) existingMACOf(spec DeviceSpec) (MAC, error) {
	link, err := netlink.LinkByName(spec.Name())
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return MAC{}, nil
	}
	if err != nil {
		return MAC{}, fmt.Errorf("vxlan: look up %s: %w", spec.Name(), err)
	}
	old, ok := link.(*netlink.Vxlan)
	if !ok {
		return MAC{}, backend.ConfigError(fmt.Errorf("vxlan: a %s device named %s exists: %w (remove it, or use another VNI)", link.Type(), spec.Name(), ErrNotVXLAN))
	}
	if incompatible(old, wantLink(spec)) != "" {
		return MAC{}, nil
	}
	m, err := MACFrom(old.HardwareAddr)
	if err != nil || m.checkUnicast() != nil {
		return MAC{}, nil
	}
	return m, nil
}

func (b *Backend) spec() DeviceSpec {
	return DeviceSpec{Config: b.cfg, UnderlayIndex: b.node.Underlay.Index, PublicIP: b.node.Underlay.PublicIP, MTU: b.MTU()}
}

// spec6 is the IPv6 side's device.
func (b *Backend) spec6() DeviceSpec {
	return DeviceSpec{Config: b.cfg, UnderlayIndex: b.node.Underlay.Index, PublicIP: b.node.Underlay.PublicIPv6,
		MTU: b.cfg.DeviceMTUV6(b.node.Underlay.MTU), V6: true}
}

func wantLink(s DeviceSpec) *netlink.Vxlan {
	return &netlink.Vxlan{VxlanId: s.VNI, VtepDevIndex: s.UnderlayIndex, SrcAddr: s.PublicIP.AsSlice(), Port: s.Port, GBP: s.GBP}
}

// portFree binds the UDP port for a moment: a port another socket holds
// is a configuration error (the device could not be set up).
func portFree(port int) error { return portFreeOn("udp4", port) }

func portFreeOn(network string, port int) error {
	c, err := net.ListenUDP(network, &net.UDPAddr{Port: port})
	if errors.Is(err, unix.EADDRINUSE) {
		return backend.ConfigError(fmt.Errorf("vxlan: UDP port %d: %w", port, ErrPortInUse))
	}
	if err != nil {
		return fmt.Errorf("vxlan: UDP port %d: %w", port, err)
	}
	return c.Close()
}

// randomMAC is a locally administered unicast address.
func randomMAC() (MAC, error) {
	var m MAC
	if _, err := rand.Read(m[:]); err != nil {
		return m, fmt.Errorf("vxlan: random MAC: %w", err)
	}
	m[0] = m[0]&^1 | 2
	return m, nil
}

// UDPPort is the VXLAN port, which the container guard keeps containers
// from (a container must not inject VXLAN frames).
func (b *Backend) UDPPort() int { return b.cfg.Port }

// MTU is the containers' MTU: flannel.<VNI>'s, or flannel-v6.<VNI>'s in
// an IPv6-only network.
func (b *Backend) MTU() int {
	if !b.node.Config.HasIPv4() {
		return b.cfg.DeviceMTUV6(b.node.Underlay.MTU)
	}
	return b.cfg.DeviceMTU(b.node.Underlay.MTU)
}

// Start makes (or keeps) flannel.<VNI> (with IPv4) and flannel-v6.<VNI>
// (with IPv6) with the published MACs, gives them the VTEP addresses of
// lease, and with DirectRouting prepares the direct routes (removing
// weft's stale ones).
func (b *Backend) Start(ctx context.Context, lease subnet.Lease) error {
	if _, err := b.LeaseAttrs(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("vxlan: netlink: %w", err)
	}
	b.h = h
	if b.node.Config.HasIPv4() {
		if err := b.start4(h, lease); err != nil {
			return err
		}
	}
	if b.node.Config.HasIPv6() {
		if err := b.start6(h, lease); err != nil {
			return err
		}
	}
	if b.cfg.DirectRouting {
		k, err := routing.NewKernel(h, b.node.Underlay.Name)
		if err != nil {
			return fmt.Errorf("vxlan: direct routing: %w", err)
		}
		if b.onLink, err = k.OnLinkPrefixes(); err != nil {
			return fmt.Errorf("vxlan: direct routing: %w", err)
		}
		if _, err := k.Sync(nil); err != nil {
			return fmt.Errorf("vxlan: direct routing: clean routes of an earlier run: %w", err)
		}
		b.direct = k
		b.log.Info("vxlan direct routing", "onLink", b.onLink)
	}
	return nil
}

// start4 makes (or keeps) flannel.<VNI> with the published MAC and gives
// it <subnet>.0/32. Runs under mu.
func (b *Backend) start4(h *netlink.Handle, lease subnet.Lease) error {
	if !lease.Subnet.IsValid() {
		return fmt.Errorf("vxlan: the network has IPv4 but this node's lease %s has no IPv4 subnet", lease)
	}
	dev, reused, err := EnsureDevice(h, b.spec())
	if errors.Is(err, ErrNoVXLAN) || errors.Is(err, ErrPortInUse) || errors.Is(err, ErrNotVXLAN) {
		return backend.ConfigError(err) // not fixed by a restart
	}
	if err != nil {
		return err
	}
	if dev.MAC != b.mac {
		// A new device, or one replaced since LeaseAttrs: give it the
		// MAC the lease publishes.
		link, err := h.LinkByIndex(dev.Index)
		if err == nil {
			err = h.LinkSetHardwareAddr(link, b.mac.HardwareAddr())
		}
		if err != nil {
			return fmt.Errorf("vxlan: set the MAC of %s to %s: %w", dev.Name, b.mac, err)
		}
		dev.MAC = b.mac
	}
	b.dev = dev
	// Who holds each VtepMAC in a kept device (an earlier weftd's or
	// flanneld's entries): those peers keep their MACs against leases
	// that copy them (Want).
	if have, _, err := dev.List(); err == nil {
		b.held = have.HeldMACs()
	}
	if err := dev.Configure(lease.Subnet, b.node.Config.Network); err != nil {
		return err
	}
	b.log.Info("vxlan device", "device", dev.Name, "vni", b.cfg.VNI, "port", b.cfg.Port, "vtepMAC", dev.MAC,
		"kept", reused, "mtu", b.cfg.DeviceMTU(b.node.Underlay.MTU), "directRouting", b.cfg.DirectRouting)
	return nil
}

// start6 makes (or keeps) flannel-v6.<VNI> with the published IPv6-side
// MAC and gives it <IPv6 subnet>::/128. Runs under mu.
func (b *Backend) start6(h *netlink.Handle, lease subnet.Lease) error {
	if !lease.IPv6Subnet.IsValid() {
		return fmt.Errorf("vxlan: the network has IPv6 but this node's lease %s has no IPv6 subnet", lease)
	}
	spec := b.spec6()
	if spec.MTU < minIPv6MTU {
		return backend.ConfigError(fmt.Errorf("vxlan: %s would get MTU %d (outgoing MTU %d less %d), less than IPv6's minimum %d", spec.Name(), spec.MTU, b.node.OutgoingMTU(), OverheadV6, minIPv6MTU))
	}
	dev, reused, err := EnsureDevice(h, spec)
	if errors.Is(err, ErrNoVXLAN) || errors.Is(err, ErrPortInUse) || errors.Is(err, ErrNotVXLAN) {
		return backend.ConfigError(err)
	}
	if err != nil {
		return err
	}
	if dev.MAC != b.mac6 {
		link, err := h.LinkByIndex(dev.Index)
		if err == nil {
			err = h.LinkSetHardwareAddr(link, b.mac6.HardwareAddr())
		}
		if err != nil {
			return fmt.Errorf("vxlan: set the MAC of %s to %s: %w", dev.Name, b.mac6, err)
		}
		dev.MAC = b.mac6
	}
	b.dev6 = dev
	if have, _, err := dev.List(); err == nil {
		b.held6 = have.HeldMACs()
	}
	if err := dev.Configure(lease.IPv6Subnet, b.node.Config.IPv6Network); err != nil {
		return err
	}
	b.log.Info("vxlan IPv6 device", "device", dev.Name, "vni", b.cfg.VNI, "port", b.cfg.Port, "vtepMAC", dev.MAC,
		"kept", reused, "mtu", spec.MTU, "publicIPv6", spec.PublicIP)
	return nil
}

// Apply takes the lease table or events and brings the kernel in line.
func (b *Backend) Apply(snapshot []subnet.Lease, events []subnet.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if snapshot != nil {
		b.leases = map[netip.Prefix]subnet.Lease{}
		for _, l := range snapshot {
			b.leases[l.Primary()] = l
		}
	}
	for _, ev := range events {
		if ev.Type == subnet.EventRemoved {
			delete(b.leases, ev.Lease.Primary())
		} else {
			b.leases[ev.Lease.Primary()] = ev.Lease
		}
	}
	b.sync(false)
}

// sync computes the peers of each family and makes the kernel match
// them: each device's entries, and the direct routes of both families
// (one routing.Kernel keeps them all). Runs under mu.
func (b *Backend) sync(repair bool) {
	if b.dev == nil && b.dev6 == nil {
		return
	}
	leases := slices.Collect(maps.Values(b.leases))
	var peers, peers6 []Peer
	var want, want6 State
	var skipped, skipped6 map[netip.Prefix]bool
	var skips, skips6 []LeaseSkip
	if b.dev != nil {
		peers, want, skipped, skips = b.want(leases, false)
	}
	if b.dev6 != nil {
		peers6, want6, skipped6, skips6 = b.want(leases, true)
	}
	// Once for both families: a skip not noted in this call is forgotten.
	b.noteSkips(slices.Concat(skips, skips6))
	syncDevices := func() (blocked bool) {
		for _, s := range []struct {
			dev  *Device
			want State
		}{{b.dev, want}, {b.dev6, want6}} {
			if s.dev != nil {
				c, err := Sync(s.dev, s.want)
				b.report(c, err, repair)
				blocked = blocked || len(c.Blocked) > 0
			}
		}
		return blocked
	}
	blocked := syncDevices()
	if b.direct != nil {
		var routes []routing.Route
		for _, p := range slices.Concat(peers, peers6) {
			if p.Direct {
				routes = append(routes, routing.Route{Subnet: p.Subnet, Gateway: p.PublicIP})
			}
		}
		dc, err := b.direct.Sync(routes)
		if err != nil {
			b.log.Error("vxlan: direct routes", "err", err)
		}
		if repair && len(dc.Added) > 0 {
			b.log.Warn("put back direct routes that were gone", "routes", dc.Added)
		}
		for _, r := range dc.Blocked {
			b.log.Warn("a route weft did not create holds this peer's subnet: leaving it alone", "subnet", r.Subnet)
		}
		if blocked && len(dc.Deleted) > 0 {
			// A peer moved from a direct route to the device: its direct
			// route was in the way of the first pass.
			syncDevices()
		}
	}
	list := peerList(b.dev != nil, peers, peers6, skipped, skipped6)
	b.peers.Store(&list)
}

// want is one family's peers, the device state that reaches them, the
// subnets left out for a VtepMAC another peer holds, and every lease
// skipped. Runs under mu.
func (b *Backend) want(leases []subnet.Lease, v6 bool) ([]Peer, State, map[netip.Prefix]bool, []LeaseSkip) {
	var peers []Peer
	var skips []LeaseSkip
	var want State
	var dups []Skipped
	family := 0
	if v6 {
		family = 1
		peers, skips = PeersOf6(leases, b.cfg, b.mac6, b.onLink, b.dev == nil)
	} else {
		peers, skips = PeersOf(leases, b.cfg, b.mac, b.onLink)
	}
	peers, same := OnePerSubnet(peers, b.chosen[family])
	skips = append(skips, same...)
	b.chosen[family] = make(map[netip.Prefix]Peer, len(peers))
	for _, p := range peers {
		b.chosen[family][p.Subnet] = p
	}
	if v6 {
		want, dups = Want(peers, b.held6)
		b.held6 = want.HeldMACs()
	} else {
		want, dups = Want(peers, b.held)
		b.held = want.HeldMACs()
	}
	skipped := map[netip.Prefix]bool{}
	for _, d := range dups {
		reason := d.Reason
		if v6 {
			reason = "BackendV6Data: " + reason
		}
		skips = append(skips, LeaseSkip{d.Peer.Subnet, SkipMAC, reason})
		skipped[d.Peer.Subnet] = true
	}
	return peers, want, skipped, skips
}

// peerList is the peers for /status: one per lease whose primary side is
// reached (the IPv4 one; the IPv6 one in an IPv6-only network, v4 false),
// with the IPv6 subnet when that side is reached too. A direct peer is
// reached by its route.
func peerList(v4 bool, peers, peers6 []Peer, skipped, skipped6 map[netip.Prefix]bool) []backend.Peer {
	mode := func(p Peer) string {
		if p.Direct {
			return ModeDirect
		}
		return ModeVXLAN
	}
	list := []backend.Peer{}
	if !v4 {
		for _, p := range peers6 {
			if !skipped6[p.Subnet] {
				list = append(list, backend.Peer{IPv6Subnet: p.Subnet, PublicIP: p.PublicIP, Mode: mode(p), Endpoint: p.PublicIP.String()})
			}
		}
		return list
	}
	v6 := map[netip.Prefix]netip.Prefix{} // the lease's IPv4 subnet -> its IPv6 subnet, reached
	for _, p := range peers6 {
		if !skipped6[p.Subnet] {
			v6[p.Lease] = p.Subnet
		}
	}
	for _, p := range peers {
		if !skipped[p.Subnet] {
			list = append(list, backend.Peer{Subnet: p.Subnet, IPv6Subnet: v6[p.Subnet], PublicIP: p.PublicIP, Mode: mode(p), Endpoint: p.PublicIP.String()})
		}
	}
	return list
}

func (b *Backend) report(c Changes, err error, repair bool) {
	if err != nil {
		b.log.Error("vxlan: read the device's state", "err", err)
		return
	}
	for _, e := range c.Errors {
		b.log.Error("vxlan", "err", e)
	}
	for _, r := range c.Blocked {
		b.log.Warn("a route weft did not create holds this peer's subnet: leaving it alone", "route", r.String())
	}
	if c.Empty() {
		return
	}
	args := []any{"neighbours", len(c.Set.Neighs), "fdb", len(c.Set.FDBs), "routes", len(c.Set.Routes),
		"removedNeighbours", len(c.Del.Neighs), "removedFDB", len(c.Del.FDBs), "removedRoutes", len(c.Del.Routes)}
	if repair {
		b.log.Warn("vxlan: put back entries that were gone or changed (by hand?), removed strays", args...)
	} else {
		b.log.Info("vxlan: peers applied", args...)
	}
}

// noteSkips counts skipped leases and logs each (subnet, detail) once
// while it stays the same: skips is every skip of one sync (both
// families), a skip left out of it is forgotten. Runs under mu.
func (b *Backend) noteSkips(skips []LeaseSkip) {
	seen := map[string]bool{}
	for _, s := range skips {
		key := s.Subnet.String() + "\x00" + s.Detail
		seen[key] = true
		if b.logged[key] {
			continue
		}
		b.logged[key] = true
		if i := slices.Index(SkipReasons, s.Reason); i >= 0 {
			b.skipped[i].Add(1)
		}
		b.log.Warn("ignoring lease", "subnet", s.Subnet, "reason", s.Reason, "detail", s.Detail)
	}
	for k := range b.logged {
		if !seen[k] {
			delete(b.logged, k)
		}
	}
}

// Run checks every CheckInterval that the device is there and up and puts
// back what went missing. A device that is gone ends Run with
// backend.ErrDeviceLost.
func (b *Backend) Run(ctx context.Context) error {
	t := time.NewTicker(CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		b.mu.Lock()
		if b.dev == nil && b.dev6 == nil {
			b.mu.Unlock()
			return nil
		}
		var err error
		for _, d := range []*Device{b.dev, b.dev6} {
			if d != nil && err == nil {
				err = d.Present()
			}
		}
		if err == nil {
			b.sync(true)
		}
		b.mu.Unlock()
		if err != nil {
			return fmt.Errorf("vxlan: %w: %v", backend.ErrDeviceLost, err)
		}
	}
}

// Peers implements backend.Backend.
func (b *Backend) Peers() []backend.Peer { return *b.peers.Load() }

// Modes implements backend.Modes.
func (b *Backend) Modes() []string { return []string{ModeVXLAN, ModeDirect} }

// Counters implements backend.Counters: leases skipped, by reason (each
// bad lease counted once while it stays the same).
func (b *Backend) Counters() map[string]any {
	m := map[string]any{}
	for i, r := range SkipReasons {
		m["skipped_leases_"+r] = b.skipped[i].Load()
	}
	return m
}

// Close leaves the device, its entries and the routes in place, as
// flanneld does: the kernel forwards on while weftd restarts or while
// flanneld takes the node over (docs/flannel-migration.md); the next
// start keeps the device and corrects the entries. It frees the netlink
// handle.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h != nil {
		b.h.Close()
		b.h = nil
	}
	b.dev = nil
	b.dev6 = nil
	return nil
}
