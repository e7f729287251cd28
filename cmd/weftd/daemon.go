package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/backend/all"
	"github.com/weftnet/weft/guard"
	"github.com/weftnet/weft/overlay"
	"github.com/weftnet/weft/policy/engine"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/subnetfile"
)

// daemonState is what the HTTP endpoints read; it is written by the daemon's
// goroutines and read concurrently, so every field is atomic or immutable.
type daemonState struct {
	lease       atomic.Pointer[subnet.Lease]
	peers       atomic.Pointer[overlay.PeerTable]
	paths       atomic.Pointer[peerPaths]     // per peer: udp, direct or unreachable
	backend     atomic.Pointer[backendHolder] // a backend of the registry (vxlan), nil for udp and host-gw
	data        atomic.Pointer[overlay.Overlay]
	dataRunning atomic.Bool
	guarded     atomic.Bool                // the container guard's table is installed
	guardSpec   atomic.Pointer[guard.Spec] // what it enforces, to put it back
	guardDrops  guardCounts                // its counters across reinstalls
	guardTable  atomic.Pointer[string]     // its tables as read back right after installing (guard.Contents)
	masq        masqKeeper                 // --ip-masq: what the masquerading table holds, to put it back
	deviceLost  atomic.Bool                // the TUN was deleted, renamed or set down
	etcdOK      atomic.Int64               // unix nanoseconds of the last successful etcd round trip
	etcdLatency prometheus.Histogram
	leaseExpiry atomic.Int64                   // unix seconds, 0 for a reservation
	endpoint    atomic.Pointer[netip.AddrPort] // this node's public IP and UDP port
	policy      atomic.Pointer[engine.Engine]  // nil until the first policy view (or --network-policy=false)
	mgr         atomic.Pointer[subnet.Manager] // for the control plane's gauges
}

type weftd struct {
	opts   *options
	log    *slog.Logger
	state  *daemonState
	client *clientv3.Client
	mgr    *subnet.Manager
	// backends are the data paths weftd can run, by Backend.Type.
	backends backend.Registry
	// etcdPorts are the embedded etcd's TCP ports (none without one),
	// which the container guard keeps containers from.
	etcdPorts []uint16
}

func newDaemon(opts *options, log *slog.Logger) *weftd {
	return &weftd{opts: opts, log: log, backends: all.Registry(), state: &daemonState{etcdLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "weft_etcd_request_duration_seconds",
		Help:    "Round-trip time of weftd's periodic etcd probe.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})}}
}

// run brings the node up and blocks until ctx is cancelled or something
// fatal happens (lease lost, data path failed).
func (d *weftd) run(ctx context.Context) error {
	// Check what can be checked before touching anything.
	var wanted *subnet.Config
	if d.opts.networkConfig != "" {
		cfg, err := d.backends.ParseConfig([]byte(d.opts.networkConfig))
		if err != nil {
			return configErrorf("--network-config: %w", err)
		}
		wanted = cfg
	}

	if err := d.clientOptions().Check(); err != nil {
		return asConfigError(err)
	}
	if err := checkWritable(d.opts.writableDirs()); err != nil {
		return err
	}

	// One weftd per network namespace: a second one exits here, before it
	// touches the device, the port or etcd of the first.
	lock, err := d.lock()
	if err != nil {
		return err
	}
	defer lock.release()

	ctx, cancel := context.WithCancelCause(ctx)
	// Every goroutine below ends on cancel; stop cancels and waits, and is
	// deferred again after each resource so it runs before that one closes.
	var wg sync.WaitGroup
	stop := func() { cancel(nil); wg.Wait() }
	defer stop()

	if d.opts.embeddedEtcdDir != "" {
		emb, err := subnet.StartEmbedded(subnet.EmbeddedOptions{
			Dir:       d.opts.embeddedEtcdDir,
			ClientURL: d.opts.embeddedEtcdListen,
			PeerURL:   d.opts.embeddedEtcdPeerListen,
			Logger:    d.log.With("component", "embedded-etcd"),
		})
		if err != nil {
			return fmt.Errorf("start embedded etcd: %w", err)
		}
		defer emb.Close()
		d.etcdPorts = emb.ListenPorts()
		d.log.Info("embedded etcd running", "endpoints", emb.Endpoints(), "dir", d.opts.embeddedEtcdDir)
	}

	// The HTTP endpoint comes up first so that /healthz answers while we
	// wait for etcd or the network config.
	if d.opts.healthzPort != 0 {
		srv, err := d.startHTTP()
		if err != nil {
			return err
		}
		defer srv.Close()
	}

	// With credentials the client authenticates inside NewClient, so an
	// etcd that is not there yet fails it: retry like any other call.
	try := d.attempts()
	cli, err := retry(ctx, try, "connect to etcd", func(context.Context) (*clientv3.Client, error) {
		return subnet.NewClient(d.clientOptions())
	})
	if err != nil {
		return err
	}
	defer cli.Close()
	defer stop() // goroutines using the client end before it closes
	d.client = cli
	d.mgr = subnet.NewManager(cli, subnet.Options{
		Prefix:      d.opts.etcdPrefix,
		TTL:         d.opts.leaseTTL,
		RenewMargin: d.opts.leaseRenewMargin,
		Logger:      d.log.With("component", "subnet"),
	})
	d.state.mgr.Store(d.mgr)
	wg.Go(func() { d.probeEtcd(ctx) })

	if wanted != nil {
		created, err := retry(ctx, try, "store network config", func(ctx context.Context) (bool, error) {
			return d.mgr.EnsureConfig(ctx, wanted)
		})
		if err != nil {
			return err
		}
		if created {
			d.log.Info("stored network config in etcd", "network", wanted.Network, "subnetLen", wanted.SubnetLen)
		}
	}
	cfg, err := retry(ctx, try, "read network config", func(ctx context.Context) (*subnet.Config, error) {
		cfg, err := d.mgr.GetConfig(ctx)
		if err == nil {
			// A config this weftd cannot run is retried like an
			// unparsable one: weftctl config set may fix it.
			err = d.backends.Check(cfg)
		}
		return cfg, err
	})
	if err != nil {
		return err
	}

	underlay, err := findUnderlay(d.opts.iface, d.opts.publicIP)
	if err != nil {
		return err
	}
	if err := cfg.CheckUnderlay(underlay.publicIP, underlay.prefixes); err != nil {
		return configErrorf("network config: %w", err)
	}
	ep := netip.AddrPortFrom(underlay.publicIP, uint16(cfg.Backend.Port))
	d.state.endpoint.Store(&ep)
	d.log.Info("underlay", "iface", underlay.name, "publicIP", underlay.publicIP, "mtu", underlay.mtu)

	if f := d.backends[cfg.Backend.Type]; f.New != nil {
		// A backend behind the seam (vxlan); udp and host-gw run below.
		return d.runBackend(ctx, cancel, &wg, f, cfg, underlay, try)
	}
	attrs := subnet.LeaseAttrsFor(cfg.Backend, underlay.publicIP)
	lease, err := d.acquireLease(ctx, try, cfg, attrs)
	if err != nil {
		return err
	}
	if err := d.installGuard(cfg.Network, lease.Subnet, cfg.Backend.Port); err != nil {
		return err
	}

	peers, err := overlay.NewPeerTable(cfg.Network, cfg.SubnetLen)
	if err != nil {
		return fmt.Errorf("peer table: %w", err)
	}
	d.state.peers.Store(peers)
	paths, err := newPeerPaths(cfg.Backend, underlay.name, lease.Subnet.Masked().Addr(), peers, d.log.With("component", "paths"))
	if err != nil {
		return err
	}
	defer paths.close()
	d.state.paths.Store(paths)
	wg.Go(func() { paths.keepRoutes(ctx, routeCheckInterval) })
	defer stop() // keepRoutes ends before the routes go

	mtu := overlay.OverlayMTU(underlay.mtu)
	data, err := overlay.New(overlay.Config{
		DeviceName: d.opts.tunName,
		Network:    cfg.Network,
		Subnet:     lease.Subnet,
		MTU:        mtu,
		Port:       uint16(cfg.Backend.Port),
		Queues:     d.opts.queues,
		Logger:     d.log.With("component", "overlay"),
	}, peers)
	if err != nil {
		if errors.Is(err, overlay.ErrForeignLink) {
			return configErrorf("data path: %w", err)
		}
		return fmt.Errorf("data path: %w", err)
	}
	defer func() {
		if err := data.Close(); err != nil {
			d.log.Warn("close data path", "err", err)
		}
	}()
	defer stop() // the loops end before the device closes
	d.state.data.Store(data)

	// Peers: the watcher's first snapshot fills the table. Forwarding
	// starts at once; a packet for a peer not yet known gets ICMP net
	// unreachable, exactly as it would for an unleased subnet.
	wg.Go(func() {
		err := d.mgr.WatchLeases(ctx, cfg, lease.Subnet, func(snapshot []subnet.Lease, events []subnet.Event) {
			paths.apply(snapshot, events)
		})
		if err != nil && ctx.Err() == nil {
			cancel(fmt.Errorf("watch leases: %w", err))
		}
	})
	wg.Go(func() {
		d.state.dataRunning.Store(true)
		err := data.Run(ctx)
		d.state.dataRunning.Store(false)
		if ctx.Err() == nil {
			if err == nil {
				err = errors.New("stopped unexpectedly")
			}
			if errors.Is(err, overlay.ErrLoopStopped) {
				// Only the device going away ends a loop while ctx is live.
				d.state.deviceLost.Store(true)
				err = fmt.Errorf("%w: %w", errDeviceGone, err)
			}
			cancel(fmt.Errorf("data path: %w", err))
		}
	})
	wg.Go(func() {
		err := watchDevice(ctx, d.opts.tunName, d.opts.queues, func(err error) {
			d.state.deviceLost.Store(true)
			cancel(err)
		})
		if err != nil && ctx.Err() == nil {
			d.log.Warn("device watch ended; a removed TUN is still noticed by the data path", "err", err)
		}
	})
	wg.Go(func() {
		err := d.mgr.KeepLease(ctx, cfg, lease, d.setLease)
		if err != nil && ctx.Err() == nil {
			cancel(fmt.Errorf("subnet lease: %w", err))
		}
	})

	return d.serveContainers(ctx, &wg, cfg, attrs, lease, containerMTU(cfg.Backend, mtu, underlay.mtu),
		"shutting down: lease kept for the restart, TUN and routes removed", "tun", d.opts.tunName, "mtu", mtu)
}

// acquireLease gets this node's lease for attrs (checking first that the
// subnet of an earlier run, in the subnet file, can be taken again).
func (d *weftd) acquireLease(ctx context.Context, try attempts, cfg *subnet.Config, attrs subnet.LeaseAttrs) (subnet.Lease, error) {
	if err := attrs.Validate(); err != nil {
		return subnet.Lease{}, fmt.Errorf("this node's lease: %w", err)
	}
	previous := d.previousSubnet()
	if previous.IsValid() {
		if _, err := retry(ctx, try, "check previous subnet", func(ctx context.Context) (struct{}, error) {
			return struct{}{}, d.checkPrevious(ctx, cfg, previous, attrs)
		}); err != nil {
			return subnet.Lease{}, err
		}
	}
	lease, err := retry(ctx, try, "acquire subnet lease", func(ctx context.Context) (subnet.Lease, error) {
		l, err := d.mgr.AcquireLease(ctx, cfg, attrs, previous)
		if errors.Is(err, subnet.ErrPoolExhausted) {
			return l, permanent{err}
		}
		return l, err
	})
	if err != nil {
		return subnet.Lease{}, err
	}
	d.setLease(lease)
	d.log.Info("holding subnet lease", "subnet", lease.Subnet, "expires", lease.Expiration)
	return lease, nil
}

// serveContainers publishes this node's containers, takes CNI requests,
// enforces policy, writes the subnet files (containers get mtu) and
// blocks until ctx ends; the data path runs already.
func (d *weftd) serveContainers(ctx context.Context, wg *sync.WaitGroup, cfg *subnet.Config, attrs subnet.LeaseAttrs, lease subnet.Lease, mtu int, bye string, readyArgs ...any) error {
	// Containers: publish what this node had, then take CNI requests.
	d.startPolicy(ctx, wg, attrs.PublicIP) // rules from the views below; the previous run's stay until then
	wg.Go(func() { d.keepTables(ctx, tableCheckInterval) })
	if err := d.startEndpoints(ctx, wg, attrs.PublicIP, lease.Subnet); err != nil {
		return err
	}
	wg.Go(func() { d.watchPolicyView(ctx) })

	env := subnetfile.Env{
		Network: cfg.Network,
		Subnet:  netip.PrefixFrom(lease.Subnet.Addr().Next(), lease.Subnet.Bits()),
		MTU:     mtu,
		IPMasq:  d.opts.ipMasq,
	}
	stopMasq, err := d.startIPMasq(cfg.Network, lease.Subnet)
	if err != nil {
		return err
	}
	defer stopMasq()
	if err := d.writeSubnetFiles(env); err != nil {
		return err
	}
	d.waitPolicyInForce(ctx)
	d.log.Info("ready", append([]any{"subnet", lease.Subnet, "containerMTU", mtu, "subnetFile", d.opts.subnetFile}, readyArgs...)...)
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		d.log.Warn("systemd notify", "err", err)
	}

	<-ctx.Done()
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	d.log.Info(bye)
	return nil
}

// lock takes the daemon's lock (--lock-file, or the lock of this network
// namespace under /run/weft).
func (d *weftd) lock() (*nodeLock, error) {
	path := d.opts.lockFile
	if path == "" {
		var err error
		if path, err = defaultLockPath(); err != nil {
			return nil, err
		}
	}
	return acquireLock(path)
}

func (d *weftd) setLease(l subnet.Lease) {
	d.state.lease.Store(&l)
	if l.Expiration.IsZero() {
		d.state.leaseExpiry.Store(0)
	} else {
		d.state.leaseExpiry.Store(l.Expiration.Unix())
	}
}

// probeEtcd measures etcd round trips for /readyz and the latency metric.
func (d *weftd) probeEtcd(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		start := time.Now()
		err := d.mgr.RoundTrip(rctx)
		cancel()
		if err == nil {
			d.state.etcdLatency.Observe(time.Since(start).Seconds())
			d.state.etcdOK.Store(time.Now().UnixNano())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// previousSubnet is the subnet of an earlier run: weft's subnet file, else
// the flannel subnet file (--flannel-subnet-file) flanneld or weftd wrote
// (a node moving from flanneld to weftd keeps its subnet).
func (d *weftd) previousSubnet() netip.Prefix {
	if p := previousSubnet(d.opts.subnetFile, subnetfile.Read, d.log); p.IsValid() || d.opts.flannelSubnetFile == "" {
		return p
	}
	return previousSubnet(d.opts.flannelSubnetFile, subnetfile.ReadFlannel, d.log)
}

// previousSubnet returns the subnet recorded in an earlier run's subnet
// file, if there is one (whether it fits the current network is for
// checkPrevious to judge).
func previousSubnet(path string, read func(string) (subnetfile.Env, error), log *slog.Logger) netip.Prefix {
	env, err := read(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("ignoring unreadable subnet file from an earlier run", "err", err)
		}
		return netip.Prefix{}
	}
	return env.Subnet.Masked()
}

// checkPrevious refuses to start when this host cannot come back on the
// subnet it used before (as recorded in its subnet file): taking a new
// subnet would silently renumber a host whose containers use the old one.
func (d *weftd) checkPrevious(ctx context.Context, cfg *subnet.Config, previous netip.Prefix, attrs subnet.LeaseAttrs) error {
	err := d.mgr.CheckPrevious(ctx, cfg, previous, attrs)
	if errors.Is(err, subnet.ErrWouldRenumber) {
		return permanent{fmt.Errorf("this host used subnet %s (subnet file %s): %w; "+
			"refusing to renumber a host whose containers may still use the old subnet: "+
			"stop them and remove %s to take a new subnet", previous, d.opts.subnetFile, err, d.opts.subnetFile)}
	}
	return err
}
