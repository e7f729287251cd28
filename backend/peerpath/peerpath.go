// Package peerpath decides, per peer, how this node reaches it: through
// the UDP data path's peer table, a direct kernel route via its PublicIP,
// or not at all (routing.Choose), and keeps both in step with the lease
// events: the reconciler behind the udp backend with and without
// DirectRouting, and behind host-gw. It is written against three small
// interfaces (the peer table, the route syncer, the source check), so its
// logic is tested without root against fakes.
package peerpath

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftnet/weft/overlay"
	"github.com/weftnet/weft/routing"
	"github.com/weftnet/weft/subnet"
)

// Table is the UDP data path's peer table (*overlay.PeerTable).
type Table interface {
	Set(overlay.Peer) error
	Remove(subnet netip.Prefix)
	ResetChecked(peers []overlay.Peer) error
}

// Routes keeps weft's kernel routes (*routing.Kernel).
type Routes interface {
	// Sync makes weft's routes exactly want (see routing.Kernel.Sync).
	Sync(want []routing.Route) (routing.Changes, error)
	// Neighbours returns the link-layer addresses the neighbour table
	// holds for addrs (those it has).
	Neighbours(addrs []netip.Addr) (map[netip.Addr]net.HardwareAddr, error)
}

// SourceCheck binds direct peers' subnets to their MAC addresses
// (*routing.SourceCheck).
type SourceCheck interface {
	Set(bindings []routing.Binding) error
	Dropped() (uint64, error)
}

// Path is how one peer is reached: its lease's subnets of either family
// (the IPv4 one invalid on an IPv6-only network, the IPv6 one invalid
// without IPv6) and how each is reached.
type Path struct {
	Subnet     netip.Prefix
	IPv6Subnet netip.Prefix
	PublicIP   netip.Addr // IPv4 (invalid when the lease has none)
	PublicIPv6 netip.Addr // invalid when the lease has none
	// UDPAddr is the address the peer's datagrams go to: PublicIP over an
	// IPv4 underlay, PublicIPv6 over an IPv6 one.
	UDPAddr netip.Addr
	Port    int // the peer's UDP port; 0 for a host-gw lease
	// Mode is how Subnet is reached (for an IPv6-only lease: IPv6Subnet);
	// Mode6 how IPv6Subnet is (a direct route needs the peer's PublicIPv6
	// on this node's link; without it DirectRouting sends IPv6 through UDP
	// and host-gw cannot reach it).
	Mode, Mode6 routing.Mode
}

// Key is the subnet the lease is known by: its IPv4 subnet, or its IPv6
// one on an IPv6-only network.
func (p Path) Key() netip.Prefix {
	if p.Subnet.IsValid() {
		return p.Subnet
	}
	return p.IPv6Subnet
}

// Endpoint is where packets for the peer go: UDPAddr:Port through UDP,
// the PublicIP (PublicIPv6 for an IPv6-only lease) as next hop of a direct
// route, nothing when unreachable.
func (p Path) Endpoint() string {
	switch p.Mode {
	case routing.ModeUDP:
		return netip.AddrPortFrom(p.UDPAddr, uint16(p.Port)).String()
	case routing.ModeDirect:
		if !p.Subnet.IsValid() {
			return p.PublicIPv6.String()
		}
		return p.PublicIP.String()
	}
	return ""
}

// PublicAddr is the peer's PublicIP, or its PublicIPv6 when it has none.
func (p Path) PublicAddr() netip.Addr {
	if p.PublicIP.IsValid() {
		return p.PublicIP
	}
	return p.PublicIPv6
}

// Config is what a Paths works with.
type Config struct {
	Policy routing.Policy
	// OnLink are the connected prefixes of the underlay (routing.Choose).
	OnLink []netip.Prefix
	// Source is the preferred source of the direct routes: this node's
	// TUN address, the source the kernel picks for packets this host
	// sends through the TUN. Without it, the host's own packets to a
	// direct peer's subnet would leave from the underlay address, and a
	// UDP service listening on the wildcard address would answer a
	// request for the TUN address from the underlay address, which the
	// client drops (iperf3 -u between TUN addresses failed this way).
	Source netip.Addr
	// Source6 is the preferred source of the direct IPv6 routes: this
	// node's TUN IPv6 address (invalid without IPv6).
	Source6 netip.Addr
	// UnderlayIPv6: this node's underlay is IPv6 (no IPv4 PublicIP): UDP
	// peers are reached at their PublicIPv6.
	UnderlayIPv6 bool
	Table        Table
	// Routes and Check are nil when the policy never routes directly.
	Routes Routes
	Check  SourceCheck
	Log    *slog.Logger
}

// Paths turns lease events into either a peer in the UDP data path's
// table or a kernel route (routing.Choose decides), and publishes the
// result for /status and /metrics. Apply runs on the lease watcher's
// goroutine only; View may be read from anywhere.
type Paths struct {
	policy routing.Policy
	onLink []netip.Prefix
	udp    Table
	kernel Routes // nil when the policy never routes directly
	source netip.Addr
	// source6 is the direct IPv6 routes' preferred source; underlay6 that
	// UDP peers are reached at their PublicIPv6.
	source6   netip.Addr
	underlay6 bool
	log       *slog.Logger
	// check binds each direct peer's subnet to its MAC address in the
	// kernel (nil when the policy never routes directly); macs are the
	// last addresses seen in the neighbour table, by PublicIP.
	check SourceCheck
	macs  map[netip.Addr]net.HardwareAddr

	mu    sync.Mutex            // Apply and Repair
	known map[netip.Prefix]Path // what the last Apply decided, by Path.Key
	list  atomic.Pointer[[]Path]
}

// New makes a Paths from c (nothing is applied yet).
func New(c Config) *Paths {
	if c.Log == nil {
		c.Log = slog.Default()
	}
	p := &Paths{policy: c.Policy, onLink: c.OnLink, udp: c.Table, kernel: c.Routes, check: c.Check, source: c.Source,
		source6: c.Source6, underlay6: c.UnderlayIPv6, log: c.Log,
		known: map[netip.Prefix]Path{}, macs: map[netip.Addr]net.HardwareAddr{}}
	p.list.Store(&[]Path{})
	return p
}

// View returns the current paths, sorted by subnet; do not modify it.
func (p *Paths) View() []Path { return *p.list.Load() }

// Clear removes weft's routes (the TUN goes too when weftd stops).
func (p *Paths) Clear() {
	if p.kernel == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.kernel.Sync(nil); err != nil {
		p.log.Warn("remove direct routes", "err", err)
	}
}

// RouteCheckInterval is how often weft's routes are compared with the
// kernel's table and put back where they went missing (as flannel's
// host-gw does every 10 s).
const RouteCheckInterval = 5 * time.Second

// KeepRoutes puts back weft's routes that disappeared (someone deleted
// them, or the kernel flushed them with the underlay going down), every
// interval until ctx ends.
func (p *Paths) KeepRoutes(ctx context.Context, interval time.Duration) {
	if p.kernel == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.Repair()
	}
}

// Repair runs the route sync once more, putting back weft's routes that
// went missing, and follows the neighbour table in the source check.
func (p *Paths) Repair() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.syncRoutes(true)
	p.publish()
}

// Apply takes a snapshot (the whole lease table) or a batch of events.
func (p *Paths) Apply(snapshot []subnet.Lease, events []subnet.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if snapshot != nil {
		next := map[netip.Prefix]Path{}
		var udp []overlay.Peer
		for _, l := range snapshot {
			if pp, ok := p.pathOf(l); ok {
				next[pp.Key()] = pp
				if pp.hasUDP() {
					udp = append(udp, pp.peer())
				}
			}
		}
		if err := p.udp.ResetChecked(udp); err != nil {
			p.log.Warn("peer table: some peers left out", "err", err)
		}
		p.known = next
		p.syncRoutes(false)
		p.publish()
		p.log.Info("peer table loaded", "peers", len(next), "udp", p.count(routing.ModeUDP), "direct", p.count(routing.ModeDirect))
		return
	}
	for _, ev := range events {
		subnetOf := ev.Lease.Primary()
		old, had := p.known[subnetOf]
		if ev.Type == subnet.EventRemoved {
			if had {
				p.removeUDP(old)
			}
			delete(p.known, subnetOf)
			p.log.Info("peer removed", "subnet", subnetOf)
			continue
		}
		pp, ok := p.pathOf(ev.Lease)
		if !ok {
			if had {
				p.removeUDP(old)
			}
			delete(p.known, subnetOf)
			continue
		}
		if had && !covers(pp.peer(), old.peer()) {
			// The new peer takes over none or only some of the slots the
			// old one held (a family moved to a direct route): Set would
			// leave the others.
			p.removeUDP(old)
		}
		if pp.hasUDP() {
			if err := p.udp.Set(pp.peer()); err != nil {
				p.log.Warn("ignoring lease", "subnet", subnetOf, "err", err)
				delete(p.known, subnetOf)
				continue
			}
		}
		p.known[subnetOf] = pp
		if pp.IPv6Subnet.IsValid() {
			p.log.Info("peer added", "subnet", pp.Subnet, "ipv6_subnet", pp.IPv6Subnet, "mode", pp.Mode, "ipv6_mode", pp.Mode6, "endpoint", pp.Endpoint())
		} else {
			p.log.Info("peer added", "subnet", pp.Subnet, "mode", pp.Mode, "endpoint", pp.Endpoint())
		}
	}
	p.syncRoutes(false)
	p.publish()
}

// pathOf decides how to reach the node holding lease l. A lease whose
// attributes do not fit this node's backend is logged and left out.
func (p *Paths) pathOf(l subnet.Lease) (Path, bool) {
	key := l.Primary()
	if !key.IsValid() {
		p.log.Warn("ignoring lease without a subnet", "publicIP", l.Attrs.PublicIP)
		return Path{}, false
	}
	ip, err := netip.ParseAddr(l.Attrs.PublicIP)
	if err != nil || !ip.Is4() {
		ip = netip.Addr{}
	}
	ip6, err := netip.ParseAddr(l.Attrs.PublicIPv6)
	if err != nil || !ip6.Is6() || ip6.Is4In6() || ip6.Zone() != "" {
		ip6 = netip.Addr{}
	}
	pp := Path{Subnet: l.Subnet, IPv6Subnet: l.IPv6Subnet, PublicIP: ip, PublicIPv6: ip6, UDPAddr: ip}
	if p.underlay6 {
		pp.UDPAddr = ip6
	}
	if !ip.IsValid() && !ip6.IsValid() {
		p.log.Warn("ignoring lease with a bad PublicIP", "subnet", key, "publicIP", l.Attrs.PublicIP, "publicIPv6", l.Attrs.PublicIPv6)
		return Path{}, false
	}
	if l.Subnet.IsValid() {
		pp.Mode = routing.Choose(p.policy, ip, p.onLink)
	}
	if l.IPv6Subnet.IsValid() {
		pp.Mode6 = routing.Choose(p.policy, ip6, p.onLink)
		if !l.Subnet.IsValid() {
			pp.Mode = pp.Mode6
		}
	}
	if p.policy.HostGW {
		if pp.Mode == routing.ModeUnreachable {
			p.log.Error("peer is not on this node's L2 network: host-gw cannot reach it (use Backend udp with DirectRouting to reach it through UDP)",
				"subnet", key, "publicIP", pp.PublicAddr(), "onLink", p.onLink)
		} else if pp.IPv6Subnet.IsValid() && pp.Mode6 == routing.ModeUnreachable {
			p.log.Error("peer's IPv6 subnet is unreachable with host-gw: its lease has no PublicIPv6 on this node's L2 network",
				"subnet", key, "ipv6_subnet", pp.IPv6Subnet, "publicIPv6", l.Attrs.PublicIPv6, "onLink", p.onLink)
		}
		return pp, true
	}
	if l.Attrs.BackendType != "" && l.Attrs.BackendType != subnet.BackendUDP {
		p.log.Warn("ignoring lease of another backend", "subnet", key, "backend", l.Attrs.BackendType)
		return Path{}, false
	}
	port, err := l.Attrs.Port()
	if err != nil || port <= 0 || port > 65535 {
		p.log.Warn("ignoring lease with a bad port", "subnet", key, "err", err)
		return Path{}, false
	}
	pp.Port = port
	if pp.hasUDP() && !pp.UDPAddr.IsValid() {
		if p.underlay6 {
			p.log.Warn("ignoring lease without a PublicIPv6: this node's underlay is IPv6", "subnet", key, "publicIP", l.Attrs.PublicIP)
		} else {
			p.log.Warn("ignoring lease without an IPv4 PublicIP: this node's underlay is IPv4", "subnet", key, "publicIPv6", l.Attrs.PublicIPv6)
		}
		return Path{}, false
	}
	return pp, true
}

// hasUDP tells whether a subnet of the peer goes through the UDP data path.
func (pp Path) hasUDP() bool {
	return pp.Subnet.IsValid() && pp.Mode == routing.ModeUDP || pp.IPv6Subnet.IsValid() && pp.Mode6 == routing.ModeUDP
}

// peer is the peer-table entry of the subnets reached through UDP.
func (pp Path) peer() overlay.Peer {
	p := overlay.Peer{Endpoint: netip.AddrPortFrom(pp.UDPAddr, uint16(pp.Port))}
	if pp.Subnet.IsValid() && pp.Mode == routing.ModeUDP {
		p.Subnet = pp.Subnet
	}
	if pp.IPv6Subnet.IsValid() && pp.Mode6 == routing.ModeUDP {
		p.IPv6Subnet = pp.IPv6Subnet
	}
	return p
}

// covers tells whether Set(next) replaces every slot old holds.
func covers(next, old overlay.Peer) bool {
	return (!old.Subnet.IsValid() || old.Subnet == next.Subnet) && (!old.IPv6Subnet.IsValid() || old.IPv6Subnet == next.IPv6Subnet)
}

// removeUDP takes old's entry out of the peer table, if it has one.
func (p *Paths) removeUDP(old Path) {
	switch e := old.peer(); {
	case e.Subnet.IsValid():
		p.udp.Remove(e.Subnet)
	case e.IPv6Subnet.IsValid():
		p.udp.Remove(e.IPv6Subnet)
	}
}

// syncRoutes makes the kernel's weft routes match the direct peers. A
// peer whose subnet already has a route weft did not create keeps that
// route: with DirectRouting it falls back to UDP, with host-gw it is
// unreachable through weft.
func (p *Paths) syncRoutes(repair bool) {
	if p.kernel == nil {
		return
	}
	var want []routing.Route
	keyOf := map[netip.Prefix]netip.Prefix{} // route subnet -> lease key
	for key, pp := range p.known {
		if pp.Subnet.IsValid() && pp.Mode == routing.ModeDirect {
			want = append(want, routing.Route{Subnet: pp.Subnet, Gateway: pp.PublicIP, Source: p.source})
			keyOf[pp.Subnet] = key
		}
		if pp.IPv6Subnet.IsValid() && pp.Mode6 == routing.ModeDirect {
			want = append(want, routing.Route{Subnet: pp.IPv6Subnet, Gateway: pp.PublicIPv6, Source: p.source6})
			keyOf[pp.IPv6Subnet] = key
		}
	}
	c, err := p.kernel.Sync(want)
	if err != nil {
		p.log.Error("direct routes", "err", err)
	}
	if len(c.Added) > 0 && repair {
		p.log.Warn("put back weft routes that were gone (deleted by hand, or dropped with the underlay)", "routes", c.Added)
	}
	for _, r := range c.Blocked {
		key := keyOf[r.Subnet]
		pp := p.known[key]
		p.log.Warn("a route weft did not create holds this peer's subnet: leaving it alone", "subnet", r.Subnet, "peer", r.Gateway)
		v6 := r.Subnet == pp.IPv6Subnet && !(r.Subnet == pp.Subnet)
		fallback := pp
		if v6 {
			fallback.Mode6 = routing.ModeUDP
			if !pp.Subnet.IsValid() {
				fallback.Mode = routing.ModeUDP
			}
		} else {
			fallback.Mode = routing.ModeUDP
		}
		switch {
		case p.policy.HostGW || pp.Port == 0 || !pp.UDPAddr.IsValid():
			if v6 {
				pp.Mode6 = routing.ModeUnreachable
				if !pp.Subnet.IsValid() {
					pp.Mode = routing.ModeUnreachable
				}
			} else {
				pp.Mode = routing.ModeUnreachable
			}
		case p.udp.Set(fallback.peer()) == nil:
			pp = fallback
		}
		p.known[key] = pp
	}
	p.bindSources()
}

// bindSources keeps the source check in step with the direct peers: each
// one's subnet is bound to the MAC address the neighbour table has for
// its PublicIP. A peer whose address is not resolved yet (no packet
// exchanged) has no rule until it is; a MAC that changes (a new NIC) is
// followed at the next check. Runs under p.mu.
func (p *Paths) bindSources() {
	if p.check == nil {
		return
	}
	var ips []netip.Addr
	for _, pp := range p.known {
		if pp.Subnet.IsValid() && pp.Mode == routing.ModeDirect {
			ips = append(ips, pp.PublicIP)
		}
		if pp.IPv6Subnet.IsValid() && pp.Mode6 == routing.ModeDirect {
			ips = append(ips, pp.PublicIPv6)
		}
	}
	seen, err := p.kernel.Neighbours(ips)
	if err != nil {
		p.log.Warn("source check: read neighbours", "err", err)
	}
	for ip, mac := range seen {
		if old, ok := p.macs[ip]; ok && !bytes.Equal(old, mac) {
			p.log.Warn("source check: a direct peer's MAC address changed", "peer", ip, "was", old, "now", mac)
		}
		p.macs[ip] = mac
	}
	var bindings []routing.Binding
	for ip := range p.macs {
		if !slices.Contains(ips, ip) {
			delete(p.macs, ip)
		}
	}
	for _, pp := range p.known {
		if mac, ok := p.macs[pp.PublicIP]; ok && pp.Subnet.IsValid() && pp.Mode == routing.ModeDirect {
			bindings = append(bindings, routing.Binding{Subnet: pp.Subnet, MAC: mac})
		}
		if mac, ok := p.macs[pp.PublicIPv6]; ok && pp.IPv6Subnet.IsValid() && pp.Mode6 == routing.ModeDirect {
			bindings = append(bindings, routing.Binding{Subnet: pp.IPv6Subnet, MAC: mac})
		}
	}
	if err := p.check.Set(bindings); err != nil {
		p.log.Error("source check", "err", err)
	}
}

// SourceDrops is how many packets the source check dropped (0 without one).
func (p *Paths) SourceDrops() uint64 {
	if p.check == nil {
		return 0
	}
	n, err := p.check.Dropped()
	if err != nil {
		p.log.Warn("source check: read counter", "err", err)
	}
	return n
}

func (p *Paths) publish() {
	list := slices.SortedFunc(maps.Values(p.known), func(a, b Path) int { return a.Key().Compare(b.Key()) })
	p.list.Store(&list)
}

func (p *Paths) count(m routing.Mode) int {
	n := 0
	for _, pp := range p.known {
		if pp.Mode == m {
			n++
		}
	}
	return n
}
