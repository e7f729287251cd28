package main

import (
	"bytes"
	"context"
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

	"github.com/weftnet/weft/overlay"
	"github.com/weftnet/weft/routing"
	"github.com/weftnet/weft/subnet"
)

// peerPath is how one peer is reached.
type peerPath struct {
	Subnet   netip.Prefix
	PublicIP netip.Addr
	Port     int // the peer's UDP port; 0 for a host-gw lease
	Mode     routing.Mode
}

// endpoint is where packets for the peer go: PublicIP:Port through UDP,
// the PublicIP as next hop of a direct route, nothing when unreachable.
func (p peerPath) endpoint() string {
	switch p.Mode {
	case routing.ModeUDP:
		return netip.AddrPortFrom(p.PublicIP, uint16(p.Port)).String()
	case routing.ModeDirect:
		return p.PublicIP.String()
	}
	return ""
}

// peerPaths turns lease events into either a peer in the UDP data path's
// table or a kernel route (routing.Choose decides), and publishes the
// result for /status and /metrics. apply runs on the lease watcher's
// goroutine only; view may be read from anywhere.
type peerPaths struct {
	policy routing.Policy
	onLink []netip.Prefix
	udp    *overlay.PeerTable
	kernel *routing.Kernel // nil when the policy never routes directly
	// source is the preferred source of the direct routes: this node's
	// TUN address, the source the kernel picks for packets this host sends
	// through the TUN. Without it, the host's own packets to a direct
	// peer's subnet would leave from the underlay address, and a UDP
	// service listening on the wildcard address would answer a request
	// for the TUN address from the underlay address, which the client
	// drops (iperf3 -u between TUN addresses failed this way).
	source netip.Addr
	log    *slog.Logger
	// check binds each direct peer's subnet to its MAC address in the
	// kernel (nil when the policy never routes directly); macs are the
	// last addresses seen in the neighbour table, by PublicIP.
	check *routing.SourceCheck
	macs  map[netip.Addr]net.HardwareAddr
	// release removes the source check and frees the kernel's netlink
	// handle (nil if none).
	release func()

	mu    sync.Mutex                // apply and keepRoutes
	known map[netip.Prefix]peerPath // what the last apply decided
	list  atomic.Pointer[[]peerPath]
}

// newPeerPaths prepares the paths for backend on the underlay interface;
// source is the address the TUN will have (the direct routes' preferred
// source; the TUN must have it before the first peer is applied). With
// direct routing it removes weft routes an earlier run left behind.
func newPeerPaths(backend subnet.Backend, underlayDev string, source netip.Addr, udp *overlay.PeerTable, log *slog.Logger) (*peerPaths, error) {
	policy := routing.Policy{HostGW: backend.Type == subnet.BackendHostGW, DirectRouting: backend.DirectRouting}
	if !policy.Direct() {
		return makePeerPaths(policy, nil, nil, udp, log), nil
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("direct routing: netlink: %w", err)
	}
	fail := func(err error) (*peerPaths, error) {
		h.Close()
		return nil, fmt.Errorf("direct routing: %w", err)
	}
	k, err := routing.NewKernel(h, underlayDev)
	if err != nil {
		return fail(err)
	}
	onLink, err := k.OnLinkPrefixes()
	if err != nil {
		return fail(err)
	}
	if err := acceptDirectTraffic(underlayDev); err != nil {
		return fail(err)
	}
	if v := rpFilterAll(); v == "2" {
		log.Warn("net.ipv4.conf.all.rp_filter=2 (loose) overrides the strict check on the underlay: sources in other peers' subnets are accepted from the underlay", "underlay", underlayDev)
	}
	if stale, err := k.Owned(); err == nil && len(stale) > 0 {
		log.Info("removing weft routes left by an earlier run", "routes", len(stale))
	}
	if _, err := k.Sync(nil); err != nil {
		return fail(fmt.Errorf("clean routes of an earlier run: %w", err))
	}
	check, err := routing.NewSourceCheck(underlayDev)
	if err != nil {
		return fail(err)
	}
	log.Info("direct routing", "hostGW", policy.HostGW, "underlay", underlayDev, "onLink", onLink,
		"routeProtocol", routing.Protocol, "sourceCheck", "table ip "+routing.SourceTable)
	p := makePeerPaths(policy, onLink, k, udp, log)
	p.source = source
	p.check = check
	p.release = func() {
		if err := check.Close(); err != nil {
			log.Warn("remove the source check", "err", err)
		}
		h.Close()
	}
	return p, nil
}

// makePeerPaths assembles peerPaths from its parts (kernel nil when the
// policy never routes directly).
func makePeerPaths(policy routing.Policy, onLink []netip.Prefix, kernel *routing.Kernel, udp *overlay.PeerTable, log *slog.Logger) *peerPaths {
	p := &peerPaths{policy: policy, onLink: onLink, kernel: kernel, udp: udp, log: log,
		known: map[netip.Prefix]peerPath{}, macs: map[netip.Addr]net.HardwareAddr{}}
	p.list.Store(&[]peerPath{})
	return p
}

// view returns the current paths, sorted by subnet; do not modify it.
func (p *peerPaths) view() []peerPath { return *p.list.Load() }

// close removes weft's routes (the TUN goes too when weftd stops).
func (p *peerPaths) close() {
	if p.kernel == nil {
		return
	}
	if _, err := p.kernel.Sync(nil); err != nil {
		p.log.Warn("remove direct routes", "err", err)
	}
	if p.release != nil {
		p.release()
	}
}

// routeCheckInterval is how often weft's routes are compared with the
// kernel's table and put back where they went missing (as flannel's
// host-gw does every 10 s).
const routeCheckInterval = 5 * time.Second

// keepRoutes puts back weft's routes that disappeared (someone deleted
// them, or the kernel flushed them with the underlay going down), every
// interval until ctx ends.
func (p *peerPaths) keepRoutes(ctx context.Context, interval time.Duration) {
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
		p.mu.Lock()
		p.syncRoutes(true)
		p.publish()
		p.mu.Unlock()
	}
}

// apply takes a snapshot (the whole lease table) or a batch of events.
func (p *peerPaths) apply(snapshot []subnet.Lease, events []subnet.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if snapshot != nil {
		next := map[netip.Prefix]peerPath{}
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
		p.log.Info("peer added", "subnet", pp.Subnet, "mode", pp.Mode, "endpoint", pp.endpoint())
	}
	p.syncRoutes(false)
	p.publish()
}

// pathOf decides how to reach the node holding lease l. A lease whose
// attributes do not fit this node's backend is logged and left out.
func (p *peerPaths) pathOf(l subnet.Lease) (peerPath, bool) {
	ip, err := netip.ParseAddr(l.Attrs.PublicIP)
	if err != nil || !ip.Is4() {
		p.log.Warn("ignoring lease with a bad PublicIP", "subnet", l.Subnet, "publicIP", l.Attrs.PublicIP)
		return peerPath{}, false
	}
	pp := peerPath{Subnet: l.Subnet, PublicIP: ip, Mode: routing.Choose(p.policy, ip, p.onLink)}
	if p.policy.HostGW {
		if pp.Mode == routing.ModeUnreachable {
			p.log.Error("peer is not on this node's L2 network: host-gw cannot reach it (use Backend udp with DirectRouting to reach it through UDP)",
				"subnet", l.Subnet, "publicIP", ip, "onLink", p.onLink)
		}
		return pp, true
	}
	if l.Attrs.BackendType != "" && l.Attrs.BackendType != subnet.BackendUDP {
		p.log.Warn("ignoring lease of another backend", "subnet", l.Subnet, "backend", l.Attrs.BackendType)
		return peerPath{}, false
	}
	port, err := l.Attrs.Port()
	if err != nil || port <= 0 || port > 65535 {
		p.log.Warn("ignoring lease with a bad port", "subnet", l.Subnet, "err", err)
		return peerPath{}, false
	}
	pp.Port = port
	return pp, true
}

func (pp peerPath) peer() overlay.Peer {
	return overlay.Peer{Subnet: pp.Subnet, Endpoint: netip.AddrPortFrom(pp.PublicIP, uint16(pp.Port))}
}

// syncRoutes makes the kernel's weft routes match the direct peers. A
// peer whose subnet already has a route weft did not create keeps that
// route: with DirectRouting it falls back to UDP, with host-gw it is
// unreachable through weft.
func (p *peerPaths) syncRoutes(repair bool) {
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
func (p *peerPaths) bindSources() {
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

// sourceDrops is how many packets the source check dropped (0 without one).
func (p *peerPaths) sourceDrops() uint64 {
	if p.check == nil {
		return 0
	}
	n, err := p.check.Dropped()
	if err != nil {
		p.log.Warn("source check: read counter", "err", err)
	}
	return n
}

func (p *peerPaths) publish() {
	list := slices.SortedFunc(maps.Values(p.known), func(a, b peerPath) int { return a.Subnet.Compare(b.Subnet) })
	p.list.Store(&list)
}

func (p *peerPaths) count(m routing.Mode) int {
	n := 0
	for _, pp := range p.known {
		if pp.Mode == m {
			n++
		}
	}
	return n
}

// containerMTU is the MTU containers get: the overlay's, except with
// host-gw, where nothing is encapsulated.
func containerMTU(b subnet.Backend, overlayMTU, underlayMTU int) int {
	if b.Type == subnet.BackendHostGW {
		return underlayMTU
	}
	return overlayMTU
}
