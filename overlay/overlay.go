// Package overlay is weft's data path: the wire format, the peer table and
// the two forwarding loops (TUN->UDP, UDP->TUN), written against two small
// interfaces (tunDevice, udpSocket) whose real implementations are
// overlay/tundev and overlay/udpbatch.
package overlay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
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
	Network    netip.Prefix // the overlay network, e.g. 10.244.0.0/16
	Subnet     netip.Prefix // this node's lease, network form, e.g. 10.244.7.0/24
	MTU        int          // overlay MTU for the TUN (see OverlayMTU)
	Port       uint16       // UDP port, default 8285
	Logger     *slog.Logger
}

// Overlay is a running data path in one network namespace.
type Overlay struct {
	cfg   Config
	log   *slog.Logger
	peers *PeerTable
	tun   tunDevice
	udp   udpSocket

	txRing []*txPath // batches of the TUN->UDP pipeline
	rx     *rxPath   // state of the UDP->TUN loop
	send   *sender
	txStat dirCounters
	rxStat dirCounters

	runMu     sync.Mutex // one Run at a time
	closeOnce sync.Once
	closeErr  error
}

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
	if peers == nil {
		return nil, errors.New("overlay: nil peer table")
	}
	if !cfg.Network.IsValid() || cfg.Network.Masked() != peers.Network() {
		return nil, fmt.Errorf("overlay: network %v does not match the peer table's %v", cfg.Network, peers.Network())
	}
	if !cfg.Subnet.IsValid() || !cfg.Subnet.Addr().Is4() || cfg.Subnet.Bits() != peers.SubnetLen() || !cfg.Network.Contains(cfg.Subnet.Addr()) {
		return nil, fmt.Errorf("overlay: subnet %v is not a /%d inside %v", cfg.Subnet, peers.SubnetLen(), cfg.Network)
	}
	cfg.Subnet = cfg.Subnet.Masked()
	if cfg.MTU < 576 || cfg.MTU > 65535-HeaderLen-outerIPv4HeaderLen-udpHeaderLen {
		return nil, fmt.Errorf("overlay: MTU %d out of range", cfg.MTU)
	}
	dev, err := tundev.Create(cfg.DeviceName, cfg.MTU, cfg.Subnet, cfg.Network, batchSize, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	udp, err := udpbatch.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), cfg.Port), txBatches*batchSize, cfg.Logger)
	if err != nil {
		_ = dev.Close()
		return nil, fmt.Errorf("overlay: %w", err)
	}
	return newOverlay(cfg, peers, dev, udp), nil
}

// newOverlay wires the loops to a TUN device and a UDP socket (real ones
// from New, in-memory fakes in tests).
func newOverlay(cfg Config, peers *PeerTable, dev tunDevice, udp udpSocket) *Overlay {
	o := &Overlay{
		cfg:   cfg,
		log:   cfg.Logger,
		peers: peers,
		tun:   dev,
		udp:   udp,
		rx:    newRXPath(peers, cfg.Subnet),
		send:  newSender(udp, txBatches*batchSize),
	}
	icmp := newICMPResponder(dev)
	for range txBatches {
		o.txRing = append(o.txRing, newTXPath(peers, cfg.MTU, icmp))
	}
	return o
}

// Run forwards packets in both directions until ctx is done (then it returns
// nil) or a loop ends while ctx is live (then it returns an error: the loop's
// own, or ErrLoopStopped when the device or socket went away under it, e.g.
// `ip link del` of the TUN or Close). It always returns once both loops ended.
func (o *Overlay) Run(ctx context.Context) error {
	o.runMu.Lock()
	defer o.runMu.Unlock()
	_ = o.tun.SetReadDeadline(time.Time{})
	_ = o.udp.SetReadDeadline(time.Time{})

	errc := make(chan error, 2)
	go func() { errc <- loopEnded("TUN->UDP", o.runTX()) }()
	go func() { errc <- loopEnded("UDP->TUN", o.runRX()) }()

	var first error
	running := 2
	select {
	case <-ctx.Done():
	case first = <-errc:
		running--
	}
	// Unblock whichever loop still sits in a read.
	_ = o.tun.SetReadDeadline(time.Now())
	_ = o.udp.SetReadDeadline(time.Now())
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

// Close removes the TUN device (and so its address and route) and closes the socket.
func (o *Overlay) Close() error {
	o.closeOnce.Do(func() {
		errTr := o.udp.Close()
		errDev := o.tun.Close()
		if errTr != nil {
			errTr = fmt.Errorf("close UDP socket: %w", errTr)
		}
		if errDev != nil {
			errDev = fmt.Errorf("close TUN: %w", errDev)
		}
		o.closeErr = errors.Join(errTr, errDev)
	})
	return o.closeErr
}
