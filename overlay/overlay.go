// Package overlay is weft's data path: the wire format, the peer table and
// the two forwarding loops (TUN->UDP, UDP->TUN), written against two small
// interfaces (TUNDevice, UDPSocket) whose real implementations are
// overlay/tundev and overlay/udpbatch (New) and whose in-memory fakes are
// overlay/overlaytest (NewWith).
package overlay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/weftnet/weft/overlay/tundev"
	"github.com/weftnet/weft/overlay/udpbatch"
)

// DefaultDeviceName is the TUN device name when Config.DeviceName is empty.
const DefaultDeviceName = "weft0"

// Config describes this node's data path.
type Config struct {
	DeviceName string       // default "weft0"
	Network    netip.Prefix // the IPv4 overlay network, e.g. 10.244.0.0/16 (invalid: IPv6 only)
	Subnet     netip.Prefix // this node's IPv4 lease, network form, e.g. 10.244.7.0/24
	// IPv6Network and IPv6Subnet are the IPv6 overlay network and this
	// node's IPv6 lease (e.g. fd10:244::/56 and fd10:244:0:7::/64), both
	// invalid when the network has no IPv6. They must match the peer
	// table's networks, as Network and Subnet do.
	IPv6Network netip.Prefix
	IPv6Subnet  netip.Prefix
	// UnderlayIPv6 opens the UDP sockets on [::]:Port (IPv6 only) instead of
	// 0.0.0.0:Port: the peers' endpoints are then IPv6 addresses (an
	// IPv6-only underlay, flannel's IPv6 PublicIP).
	UnderlayIPv6 bool
	MTU          int    // overlay MTU for the TUN (see OverlayMTUFor)
	Port         uint16 // UDP port, default 8285
	// Queues is the number of TUN queues (IFF_MULTI_QUEUE when > 1), each
	// with its own UDP socket on Port (SO_REUSEPORT) and its own TX and RX
	// workers; 0 means 1.
	Queues int
	// SourcePorts is how many outer source ports the flows are spread over
	// by a hash of the inner flow: Port .. Port+SourcePorts-1, each held by a
	// socket of this node (flow.go). Receivers accept a peer's datagrams from
	// the same range above its endpoint's port, so every node of a network
	// must use the same value. 0 means DefaultSourcePorts; 1 sends
	// everything from Port, as weft before 2026-12 did.
	SourcePorts int
	// AQM is CoDel on each TUN queue (aqm.go), off when AQM.Target is 0.
	AQM    AQM
	Logger *slog.Logger
}

// Overlay is a running data path in one network namespace.
type Overlay struct {
	cfg   Config
	log   *slog.Logger
	peers *PeerTable

	queues []*queue
	txStat dirCounters // all queues' TX workers add here
	rxStat dirCounters // all queues' RX workers add here

	runMu     sync.Mutex // one Run at a time
	closeOnce sync.Once
	closeErr  error
}

// queue is one TUN queue, its UDP socket and the state of its two workers:
// TX reads this TUN queue and sends on this socket, RX receives on this
// socket and writes into this TUN queue. The kernel picks the TUN queue per
// flow and the receiving socket per sending address, so the packets of one
// flow pass through one worker of each direction, in order.
type queue struct {
	log    *slog.Logger
	tun    tunDevice
	udp    udpSocket   // receives, and sends flow bucket 0
	extra  []udpSocket // send-only sockets of flow buckets 1.. (Port+1..)
	txRing []*txPath   // batches of the TUN->UDP pipeline
	rx     *rxPath     // state of the UDP->TUN loop
	send   *sender
	txStat *dirCounters
	rxStat *dirCounters
	// aqm, when set, judges the TUN queue's standing delay (aqm.go) from
	// emptier's reports.
	aqm     *codel
	emptier emptyReporter
}

// emptyReporter is a TUN queue that says whether a read found it empty
// since the last call (tundev.Queue); the AQM needs it.
type emptyReporter interface{ FoundEmpty() bool }

// ErrForeignLink is wrapped in New's error when a link of the device's name
// exists and is not a stale TUN: weft leaves it alone and does not start.
var ErrForeignLink = tundev.ErrForeignLink

// New creates the TUN device (address, MTU, up, route) and opens the UDP
// socket in the current network namespace.
func New(cfg Config, peers *PeerTable) (*Overlay, error) {
	if cfg.DeviceName == "" {
		cfg.DeviceName = DefaultDeviceName
	}
	if cfg.Port == 0 {
		cfg.Port = 8285
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Queues == 0 {
		cfg.Queues = 1
	}
	if cfg.Queues < 1 || cfg.Queues > MaxQueues {
		return nil, fmt.Errorf("overlay: %d queues (1 to %d)", cfg.Queues, MaxQueues)
	}
	if cfg.SourcePorts == 0 {
		cfg.SourcePorts = DefaultSourcePorts
	}
	if cfg.SourcePorts < 1 || cfg.SourcePorts > MaxSourcePorts || int(cfg.Port)+cfg.SourcePorts-1 > 65535 {
		return nil, fmt.Errorf("overlay: %d source ports from port %d (1 to %d, up to port 65535)", cfg.SourcePorts, cfg.Port, MaxSourcePorts)
	}
	if err := cfg.check(peers); err != nil {
		return nil, err
	}
	cfg.Subnet, cfg.IPv6Subnet = cfg.Subnet.Masked(), cfg.IPv6Subnet.Masked()
	dev, err := tundev.Create(cfg.DeviceName, cfg.MTU, tundev.Addrs{Subnet: cfg.Subnet, Network: cfg.Network,
		IPv6Subnet: cfg.IPv6Subnet, IPv6Network: cfg.IPv6Network}, batchSize, cfg.Queues, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	any := netip.IPv4Unspecified()
	if cfg.UnderlayIPv6 {
		any = netip.IPv6Unspecified()
	}
	udps, err := udpbatch.ListenGroup(netip.AddrPortFrom(any, cfg.Port), cfg.Queues, txBatches*batchSize, cfg.Logger)
	if err != nil {
		_ = dev.Close()
		return nil, fmt.Errorf("overlay: %w", err)
	}
	tuns := make([]tunDevice, 0, cfg.Queues)
	for _, q := range dev.Queues() {
		tuns = append(tuns, q)
	}
	// socks[q][k] sends queue q's flows of bucket k from Port+k; socks[q][0]
	// also receives.
	socks := make([][]udpSocket, cfg.Queues)
	closeAll := func() {
		for _, qs := range socks {
			for _, s := range qs {
				_ = s.Close()
			}
		}
		_ = dev.Close()
	}
	for q, u := range udps {
		socks[q] = append(socks[q], u)
	}
	for k := 1; k < cfg.SourcePorts; k++ {
		port := cfg.Port + uint16(k)
		senders, err := udpbatch.ListenSendOnly(netip.AddrPortFrom(any, port), cfg.Queues, txBatches*batchSize, cfg.Logger)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("overlay: source port %d (Port+%d of %d source ports): %w", port, k, cfg.SourcePorts, err)
		}
		for q, s := range senders {
			socks[q] = append(socks[q], s)
		}
	}
	if cfg.SourcePorts > 1 {
		cfg.Logger.Info("outer source ports by inner flow", "from", cfg.Port, "to", int(cfg.Port)+cfg.SourcePorts-1)
	}
	return newOverlay(cfg, peers, tuns, socks), nil
}

// check validates cfg against peers (what New and NewWith need alike).
func (cfg *Config) check(peers *PeerTable) error {
	if peers == nil {
		return errors.New("overlay: nil peer table")
	}
	if cfg.Network.Masked() != peers.Network() {
		return fmt.Errorf("overlay: network %v does not match the peer table's %v", cfg.Network, peers.Network())
	}
	if cfg.IPv6Network.Masked() != peers.IPv6Network() {
		return fmt.Errorf("overlay: IPv6 network %v does not match the peer table's %v", cfg.IPv6Network, peers.IPv6Network())
	}
	if cfg.Network.IsValid() && (!cfg.Subnet.IsValid() || !cfg.Subnet.Addr().Is4() || cfg.Subnet.Bits() != peers.SubnetLen() || !cfg.Network.Contains(cfg.Subnet.Addr())) {
		return fmt.Errorf("overlay: subnet %v is not a /%d inside %v", cfg.Subnet, peers.SubnetLen(), cfg.Network)
	}
	if !cfg.Network.IsValid() && cfg.Subnet.IsValid() {
		return fmt.Errorf("overlay: IPv4 subnet %v without an IPv4 network", cfg.Subnet)
	}
	if cfg.IPv6Network.IsValid() && (!cfg.IPv6Subnet.IsValid() || !cfg.IPv6Subnet.Addr().Is6() || cfg.IPv6Subnet.Bits() != peers.IPv6SubnetLen() || !cfg.IPv6Network.Contains(cfg.IPv6Subnet.Addr())) {
		return fmt.Errorf("overlay: IPv6 subnet %v is not a /%d inside %v", cfg.IPv6Subnet, peers.IPv6SubnetLen(), cfg.IPv6Network)
	}
	if !cfg.IPv6Network.IsValid() && cfg.IPv6Subnet.IsValid() {
		return fmt.Errorf("overlay: IPv6 subnet %v without an IPv6 network", cfg.IPv6Subnet)
	}
	minMTU := 576
	if cfg.IPv6Network.IsValid() {
		minMTU = ipv6MinMTU // RFC 8200 5: every IPv6 link carries 1280 bytes
	}
	if cfg.MTU < minMTU || cfg.MTU > OverlayMTUFor(65535, cfg.UnderlayIPv6) {
		return fmt.Errorf("overlay: MTU %d out of range (%d to %d)", cfg.MTU, minMTU, OverlayMTUFor(65535, cfg.UnderlayIPv6))
	}
	return nil
}

// Queue is one TUN queue and its UDP sockets, for NewWith: Sockets[0]
// receives and sends the flows of source-port bucket 0 (Config.Port),
// Sockets[k] sends bucket k (Port+k); len(Sockets) is Config.SourcePorts.
type Queue struct {
	TUN     TUNDevice
	Sockets []UDPSocket
}

// NewWith builds the data path on devices the caller made: in-memory
// fakes (overlay/overlaytest) run two nodes' forwarding in one process
// without root. cfg.DeviceName and cfg.Port are not used; cfg.SourcePorts
// (default DefaultSourcePorts) must match every queue's sockets. Close
// closes the devices.
func NewWith(cfg Config, peers *PeerTable, queues []Queue) (*Overlay, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SourcePorts == 0 {
		cfg.SourcePorts = DefaultSourcePorts
	}
	if len(queues) < 1 || len(queues) > MaxQueues {
		return nil, fmt.Errorf("overlay: %d queues (1 to %d)", len(queues), MaxQueues)
	}
	if cfg.SourcePorts < 1 || cfg.SourcePorts > MaxSourcePorts {
		return nil, fmt.Errorf("overlay: %d source ports (1 to %d)", cfg.SourcePorts, MaxSourcePorts)
	}
	if err := cfg.check(peers); err != nil {
		return nil, err
	}
	cfg.Subnet, cfg.IPv6Subnet = cfg.Subnet.Masked(), cfg.IPv6Subnet.Masked()
	cfg.Queues = len(queues)
	tuns := make([]tunDevice, 0, len(queues))
	socks := make([][]udpSocket, 0, len(queues))
	for i, q := range queues {
		if q.TUN == nil || len(q.Sockets) != cfg.SourcePorts || slices.Contains(q.Sockets, nil) {
			return nil, fmt.Errorf("overlay: queue %d: want a TUN and %d sockets (SourcePorts)", i, cfg.SourcePorts)
		}
		tuns = append(tuns, q.TUN)
		socks = append(socks, slices.Clone(q.Sockets))
	}
	return newOverlay(cfg, peers, tuns, socks), nil
}

// MaxQueues is the largest Config.Queues.
const MaxQueues = 64

// newOverlay wires the loops to TUN queues and UDP sockets, pairwise (real
// ones from New, in-memory fakes in tests; len(tuns) == len(socks) >= 1):
// queue q receives on socks[q][0] and sends flow bucket k on socks[q][k]
// (len(socks[q]) source ports; the receive check uses cfg.SourcePorts).
func newOverlay(cfg Config, peers *PeerTable, tuns []tunDevice, socks [][]udpSocket) *Overlay {
	o := &Overlay{cfg: cfg, log: cfg.Logger, peers: peers}
	for i, dev := range tuns {
		q := &queue{
			log:    cfg.Logger,
			tun:    dev,
			udp:    socks[i][0],
			extra:  socks[i][1:],
			rx:     newRXPath(peers, cfg.Subnet, cfg.IPv6Subnet, cfg.SourcePorts),
			send:   newSender(socks[i], txBatches*batchSize),
			txStat: &o.txStat,
			rxStat: &o.rxStat,
		}
		if e, ok := dev.(emptyReporter); ok && cfg.AQM.Target > 0 {
			q.aqm, q.emptier = newCodel(cfg.AQM.Target, cfg.AQM.Interval), e
		}
		icmp := newICMPResponder(dev)
		for range txBatches {
			q.txRing = append(q.txRing, newTXPath(peers, cfg.MTU, len(socks[i]), icmp))
		}
		o.queues = append(o.queues, q)
	}
	return o
}

// Run forwards packets in both directions, two workers per queue, until ctx
// is done (then it returns nil) or a worker ends while ctx is live (then it
// returns an error: the worker's own, or ErrLoopStopped when the device or
// socket went away under it, e.g. `ip link del` of the TUN or Close). It
// always returns once all workers ended.
func (o *Overlay) Run(ctx context.Context) error {
	o.runMu.Lock()
	defer o.runMu.Unlock()
	for _, q := range o.queues {
		_ = q.tun.SetReadDeadline(time.Time{})
		_ = q.udp.SetReadDeadline(time.Time{})
	}

	running := 2 * len(o.queues)
	errc := make(chan error, running)
	for i, q := range o.queues {
		tx, rx := "TUN->UDP", "UDP->TUN"
		if len(o.queues) > 1 {
			tx, rx = fmt.Sprintf("TUN->UDP (queue %d)", i), fmt.Sprintf("UDP->TUN (queue %d)", i)
		}
		go func() { errc <- loopEnded(tx, q.runTX()) }()
		go func() { errc <- loopEnded(rx, q.runRX()) }()
	}

	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
		running--
	}
	// Unblock every worker that still sits in a read.
	for _, q := range o.queues {
		_ = q.tun.SetReadDeadline(time.Now())
		_ = q.udp.SetReadDeadline(time.Now())
	}
	for ; running > 0; running-- {
		<-errc
	}
	if first == nil || ctx.Err() != nil {
		return nil
	}
	return first
}

// ErrLoopStopped is returned (wrapped) by Run when a forwarding loop ended
// without an error of its own while the context was live: its device or
// socket was closed or removed.
var ErrLoopStopped = errors.New("forwarding loop stopped: device or socket gone")

// loopEnded turns the end of a loop into the error Run reports for it.
func loopEnded(loop string, err error) error {
	if err == nil {
		err = ErrLoopStopped
	}
	return fmt.Errorf("overlay %s: %w", loop, err)
}

func isStopError(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed)
}

// Stats returns a snapshot of the counters.
func (o *Overlay) Stats() Stats {
	return Stats{TX: o.txStat.snapshot(), RX: o.rxStat.snapshot()}
}

// Close removes the TUN device (and so its address and route: the kernel
// deletes it with its last queue) and closes the sockets.
func (o *Overlay) Close() error {
	o.closeOnce.Do(func() {
		var errs []error
		for i, q := range o.queues {
			if err := q.udp.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close UDP socket %d: %w", i, err))
			}
			for k, s := range q.extra {
				if err := s.Close(); err != nil {
					errs = append(errs, fmt.Errorf("close UDP socket %d of source port %d: %w", i, k+1, err))
				}
			}
		}
		for i, q := range o.queues {
			if err := q.tun.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close TUN queue %d: %w", i, err))
			}
		}
		o.closeErr = errors.Join(errs...)
	})
	return o.closeErr
}
