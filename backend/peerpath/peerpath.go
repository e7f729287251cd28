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

// Path is how one peer is reached.
type Path struct {
	Subnet   netip.Prefix
	PublicIP netip.Addr
	Port     int // the peer's UDP port; 0 for a host-gw lease
	Mode     routing.Mode
}

// Endpoint is where packets for the peer go: PublicIP:Port through UDP,
// the PublicIP as next hop of a direct route, nothing when unreachable.
func (p Path) Endpoint() string {
	switch p.Mode {
	case routing.ModeUDP:
		return netip.AddrPortFrom(p.PublicIP, uint16(p.Port)).String()
	case routing.ModeDirect:
		return p.PublicIP.String()
	}
	return ""
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
	Table  Table
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
	log    *slog.Logger
	// check binds each direct peer's subnet to its MAC address in the
	// kernel (nil when the policy never routes directly); macs are the
	// last addresses seen in the neighbour table, by PublicIP.
	check SourceCheck
	macs  map[netip.Addr]net.HardwareAddr

	mu    sync.Mutex            // Apply and Repair
	known map[netip.Prefix]Path // what the last Apply decided
	list  atomic.Pointer[[]Path]
}

// New makes a Paths from c (nothing is applied yet).
func New(c Config) *Paths {
	if c.Log == nil {
		c.Log = slog.Default()
	}
	p := &Paths{policy: c.Policy, onLink: c.OnLink, udp: c.Table, kernel: c.Routes, check: c.Check, source: c.Source, log: c.Log,
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
				next[pp.Subnet] = pp
				if pp.Mode == routing.ModeUDP {
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
		subnetOf := ev.Lease.Subnet
		old, had := p.known[subnetOf]
		if ev.Type == subnet.EventRemoved {
			if had && old.Mode == routing.ModeUDP {
				p.udp.Remove(subnetOf)
			}
			delete(p.known, subnetOf)
			p.log.Info("peer removed", "subnet", subnetOf)
			continue
		}
		pp, ok := p.pathOf(ev.Lease)
		if !ok {
			if had && old.Mode == routing.ModeUDP {
				p.udp.Remove(subnetOf)
			}
			delete(p.known, subnetOf)
			continue
		}
		if had && old.Mode == routing.ModeUDP && pp.Mode != routing.ModeUDP {
			p.udp.Remove(subnetOf)
		}
		if pp.Mode == routing.ModeUDP {
			if err := p.udp.Set(pp.peer()); err != nil {
				p.log.Warn("ignoring lease", "subnet", subnetOf, "err", err)
				delete(p.known, subnetOf)
				continue
			}
		}
		p.known[subnetOf] = pp
		p.log.Info("peer added", "subnet", pp.Subnet, "mode", pp.Mode, "endpoint", pp.Endpoint())
	}
	p.syncRoutes(false)
	p.publish()
}

// pathOf decides how to reach the node holding lease l. A lease whose
// attributes do not fit this node's backend is logged and left out.
func (p *Paths) pathOf(l subnet.Lease) (Path, bool) {
	ip, err := netip.ParseAddr(l.Attrs.PublicIP)
	if err != nil || !ip.Is4() {
		p.log.Warn("ignoring lease with a bad PublicIP", "subnet", l.Subnet, "publicIP", l.Attrs.PublicIP)
		return Path{}, false
	}
	pp := Path{Subnet: l.Subnet, PublicIP: ip, Mode: routing.Choose(p.policy, ip, p.onLink)}
	if p.policy.HostGW {
		if pp.Mode == routing.ModeUnreachable {
			p.log.Error("peer is not on this node's L2 network: host-gw cannot reach it (use Backend udp with DirectRouting to reach it through UDP)",
				"subnet", l.Subnet, "publicIP", ip, "onLink", p.onLink)
		}
		return pp, true
	}
	if l.Attrs.BackendType != "" && l.Attrs.BackendType != subnet.BackendUDP {
		p.log.Warn("ignoring lease of another backend", "subnet", l.Subnet, "backend", l.Attrs.BackendType)
		return Path{}, false
	}
	port, err := l.Attrs.Port()
	if err != nil || port <= 0 || port > 65535 {
		p.log.Warn("ignoring lease with a bad port", "subnet", l.Subnet, "err", err)
		return Path{}, false
	}
	pp.Port = port
	return pp, true
}

func (pp Path) peer() overlay.Peer {
	return overlay.Peer{Subnet: pp.Subnet, Endpoint: netip.AddrPortFrom(pp.PublicIP, uint16(pp.Port))}
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
	for _, pp := range p.known {
		if pp.Mode == routing.ModeDirect {
			want = append(want, routing.Route{Subnet: pp.Subnet, Gateway: pp.PublicIP, Source: p.source})
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
		pp := p.known[r.Subnet]
		p.log.Warn("a route weft did not create holds this peer's subnet: leaving it alone", "subnet", r.Subnet, "peer", r.Gateway)
		if p.policy.HostGW || pp.Port == 0 {
			pp.Mode = routing.ModeUnreachable
		} else if err := p.udp.Set(pp.peer()); err == nil {
			pp.Mode = routing.ModeUDP
		}
		p.known[r.Subnet] = pp
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
		if pp.Mode == routing.ModeDirect {
			ips = append(ips, pp.PublicIP)
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
		if mac, ok := p.macs[pp.PublicIP]; ok && pp.Mode == routing.ModeDirect {
			bindings = append(bindings, routing.Binding{Subnet: pp.Subnet, MAC: mac})
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
	list := slices.SortedFunc(maps.Values(p.known), func(a, b Path) int { return a.Subnet.Compare(b.Subnet) })
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
