// Package udp is the "udp" backend: weft's user-space data path (package
// overlay: the TUN device weft0, encapsulation in UDP) to every peer, or,
// with DirectRouting, plain kernel routes to the peers on this node's L2
// and UDP to the others. host-gw (package backend/hostgw) is this backend
// with every peer routed.
//
// A lease event goes subnet -> Backend.Apply -> peerpath.Paths.Apply ->
// overlay.PeerTable (one slot) or routing.Kernel (the wanted routes).
package udp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/backend/devwatch"
	"github.com/weftnet/weft/backend/peerpath"
	"github.com/weftnet/weft/overlay"
	"github.com/weftnet/weft/routing"
	"github.com/weftnet/weft/subnet"
)

// Factory is udp's entry in a backend.Registry.
func Factory() backend.Factory {
	return backend.Factory{Check: Check, New: func(n backend.Node) (backend.Backend, error) {
		return New(n, routing.Policy{DirectRouting: n.Config.Backend.DirectRouting})
	}}
}

// Backend is the udp data path of one node (and host-gw's, see New).
type Backend struct {
	node      backend.Node
	policy    routing.Policy
	underlay6 bool // the underlay is IPv6 (no IPv4 PublicIP): sockets on [::]
	log       *slog.Logger
	mtu       int

	// Made by Start; Close undoes them.
	peers   *overlay.PeerTable
	paths   *peerpath.Paths
	data    *overlay.Overlay
	release func() // the direct routes' kernel handles and source check
	check   *routing.SourceCheck
	closed  sync.Once

	// openData and watch are overlay.New and devwatch.Watch; a test puts
	// in-memory devices (overlay.NewWith) and no watch in their place.
	openData func(overlay.Config, *overlay.PeerTable) (*overlay.Overlay, error)
	watch    func(ctx context.Context, name string, queues int, lost func(error)) error
}

// New makes the backend for node with policy: {} is plain udp,
// DirectRouting udp with direct routes on the same L2, HostGW every peer
// routed (host-gw). It changes nothing on the host.
func New(node backend.Node, policy routing.Policy) (*Backend, error) {
	if node.Config == nil {
		return nil, errors.New("no network config")
	}
	if node.Log == nil {
		node.Log = slog.Default()
	}
	b := &Backend{node: node, policy: policy, log: node.Log, underlay6: underlayIPv6(node.Underlay),
		openData: overlay.New, watch: devwatch.Watch}
	b.mtu = overlay.OverlayMTUFor(node.OutgoingMTU(), b.underlay6)
	if policy.HostGW {
		b.mtu = node.OutgoingMTU() // nothing is encapsulated
	}
	return b, nil
}

// underlayIPv6 tells whether the node's underlay is IPv6: it has an IPv6
// PublicIP and no IPv4 one (as flannel, an IPv4 PublicIP is the underlay
// when there is one).
func underlayIPv6(u backend.Underlay) bool { return !u.PublicIP.IsValid() && u.PublicIPv6.IsValid() }

// LeaseAttrs: a udp lease carries the port, a host-gw lease only the
// PublicIP (as in flannel), and the PublicIPv6 when the node has one.
func (b *Backend) LeaseAttrs() (subnet.LeaseAttrs, error) {
	a := subnet.LeaseAttrsFor(b.node.Config.Backend, b.node.Underlay.PublicIP)
	if !b.node.Underlay.PublicIP.IsValid() {
		a.PublicIP = ""
	}
	if ip6 := b.node.Underlay.PublicIPv6; ip6.IsValid() {
		a.PublicIPv6 = ip6.String()
	}
	return a, nil
}

// Start prepares the direct routes (with a policy that has them: routes of
// an earlier run removed, forwarding and strict rp_filter on the underlay,
// the source check's table), then creates the TUN device with this node's
// address and the network's route, and opens the UDP socket(s).
func (b *Backend) Start(ctx context.Context, lease subnet.Lease) error {
	cfg := b.node.Config
	var tc overlay.TableConfig
	oc := overlay.Config{
		DeviceName:   b.node.Options.DeviceName,
		UnderlayIPv6: b.underlay6,
		Port:         uint16(cfg.Backend.Port),
		Queues:       b.node.Options.Queues,
		AQM:          overlay.AQM{Target: b.node.Options.AQMTarget, Interval: b.node.Options.AQMInterval},
		Logger:       b.log.With("component", "overlay"),
	}
	if cfg.HasIPv4() {
		tc.Network, tc.SubnetLen = cfg.Network, cfg.SubnetLen
		oc.Network, oc.Subnet = cfg.Network, lease.Subnet
	}
	if cfg.HasIPv6() {
		tc.IPv6Network, tc.IPv6SubnetLen = cfg.IPv6Network, cfg.IPv6SubnetLen
		oc.IPv6Network, oc.IPv6Subnet = cfg.IPv6Network, lease.IPv6Subnet
	}
	peers, err := overlay.NewPeerTableFor(tc)
	if err != nil {
		return fmt.Errorf("peer table: %w", err)
	}
	b.peers = peers
	pc := peerpath.Config{Policy: b.policy, Table: peers, UnderlayIPv6: b.underlay6, Log: b.log.With("component", "paths")}
	if lease.Subnet.IsValid() {
		pc.Source = lease.Subnet.Masked().Addr()
	}
	if lease.IPv6Subnet.IsValid() {
		pc.Source6 = lease.IPv6Subnet.Masked().Addr()
	}
	if b.policy.Direct() {
		d, err := startDirect(b.node.Underlay.Name, b.policy, cfg.HasIPv6(), b.log.With("component", "paths"))
		if err != nil {
			return err
		}
		b.release, b.check = d.release, d.check
		pc.OnLink, pc.Routes, pc.Check = d.onLink, d.kernel, d.check
	}
	b.paths = peerpath.New(pc)

	tunMTU := b.mtu
	if b.policy.HostGW {
		// weft0 carries no container traffic with host-gw (only the ICMP
		// errors for unreachable peers): its MTU stays the underlay's
		// overlay MTU whatever Backend.MTU says.
		tunMTU = overlay.OverlayMTUFor(b.node.Underlay.MTU, b.underlay6)
	}
	oc.MTU = tunMTU
	data, err := b.openData(oc, peers)
	if err != nil {
		if errors.Is(err, overlay.ErrForeignLink) {
			return backend.ConfigError(fmt.Errorf("data path: %w", err))
		}
		return fmt.Errorf("data path: %w", err)
	}
	b.data = data
	return nil
}

// Apply hands the leases to the reconciler (peerpath): each peer goes into
// the UDP peer table or becomes a kernel route.
func (b *Backend) Apply(snapshot []subnet.Lease, events []subnet.Event) {
	b.paths.Apply(snapshot, events)
}

// Run forwards until ctx ends, keeps the direct routes (every
// peerpath.RouteCheckInterval) and watches the TUN: one that is deleted,
// renamed, set down or given a foreign queue ends Run with an error
// wrapping backend.ErrDeviceLost, as does a forwarding loop that ends
// because its device went away.
func (b *Backend) Run(ctx context.Context) error {
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()   // second: the goroutines have seen the cancel
	defer cancel(nil) // first
	if b.policy.Direct() {
		wg.Go(func() { b.paths.KeepRoutes(ctx, peerpath.RouteCheckInterval) })
	}
	wg.Go(func() {
		err := b.watch(ctx, b.deviceName(), b.node.Options.Queues, func(err error) { cancel(err) })
		if err != nil && ctx.Err() == nil {
			b.log.Warn("device watch ended; a removed TUN is still noticed by the data path", "err", err)
		}
	})
	err := b.data.Run(ctx)
	switch cause := context.Cause(ctx); {
	case parent.Err() != nil:
		return nil
	case ctx.Err() != nil && errors.Is(cause, backend.ErrDeviceLost):
		return cause
	case err == nil:
		return errors.New("stopped unexpectedly")
	case errors.Is(err, overlay.ErrLoopStopped):
		// Only the device going away ends a loop while ctx is live.
		return fmt.Errorf("%w: %w", backend.ErrDeviceLost, err)
	}
	return err
}

func (b *Backend) deviceName() string {
	if b.node.Options.DeviceName == "" {
		return overlay.DefaultDeviceName
	}
	return b.node.Options.DeviceName
}

// Peers are the reconciler's paths: udp, direct or unreachable.
func (b *Backend) Peers() []backend.Peer {
	if b.paths == nil {
		return nil
	}
	view := b.paths.View()
	out := make([]backend.Peer, 0, len(view))
	for _, p := range view {
		out = append(out, backend.Peer{Subnet: p.Subnet, IPv6Subnet: p.IPv6Subnet, PublicIP: p.PublicAddr(), Endpoint: p.Endpoint(), Mode: p.Mode.String()})
	}
	return out
}

// Modes are udp, direct and unreachable (weft_peers reports each).
func (b *Backend) Modes() []string {
	out := make([]string, 0, len(routing.Modes))
	for _, m := range routing.Modes {
		out = append(out, m.String())
	}
	return out
}

// MTU is the overlay's MTU (the outgoing MTU, Backend.MTU or the
// underlay's, minus the encapsulation), or the outgoing MTU itself with
// host-gw, where nothing is encapsulated.
func (b *Backend) MTU() int { return b.mtu }

// Close removes the TUN device (and so its address and route) and the
// sockets, then weft's direct routes and the source check's table.
func (b *Backend) Close() error {
	var errs []error
	b.closed.Do(func() {
		if b.data != nil {
			if err := b.data.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close data path: %w", err))
			}
		}
		if b.paths != nil {
			b.paths.Clear()
		}
		if b.release != nil {
			b.release()
		}
	})
	return errors.Join(errs...)
}

// UDPPort is the port the data path receives on (the container guard
// keeps containers from it); host-gw keeps weft0's socket too.
func (b *Backend) UDPPort() int { return b.node.Config.Backend.Port }
