package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/backend/all"
	"github.com/weftnet/weft/cni/daemonsock"
	"github.com/weftnet/weft/guard"
	"github.com/weftnet/weft/guard/masq"
	"github.com/weftnet/weft/nodelock"
	"github.com/weftnet/weft/overlay/tundev"
	"github.com/weftnet/weft/policy/engine"
	"github.com/weftnet/weft/retry"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/embedded"
	"github.com/weftnet/weft/subnet/subnetfile"
	"github.com/weftnet/weft/underlay"
	"github.com/weftnet/weft/workload"
	"github.com/weftnet/weft/writecheck"
)

// daemonState is what the HTTP endpoints read; it is written by the daemon's
// goroutines and read concurrently, so every field is atomic or immutable.
type daemonState struct {
	lease       atomic.Pointer[subnet.Lease]
	backend     atomic.Pointer[backend.Backend] // once started
	dataRunning atomic.Bool
	guard       guard.Keeper // the container guard: installed, checked, put back, its counters
	masq        masq.Keeper  // --ip-masq: what the masquerading table holds, to put it back
	deviceLost  atomic.Bool  // the TUN was deleted, renamed or set down
	etcdOK      atomic.Int64 // unix nanoseconds of the last successful etcd round trip
	etcdLatency prometheus.Histogram
	leaseExpiry atomic.Int64                   // unix seconds, 0 for a reservation
	endpoint    atomic.Pointer[netip.AddrPort] // this node's public IP (IPv6 on an IPv6-only underlay) and UDP port
	publicIPv6  atomic.Pointer[netip.Addr]     // this node's IPv6 public IP, nil when none
	policy      atomic.Pointer[engine.Engine]  // nil until the first policy view (or --network-policy=false)
	mgr         atomic.Pointer[subnet.Manager] // for the control plane's gauges
	store       atomic.Pointer[workload.Store] // for the count of malformed values
}

type weftd struct {
	opts   *options
	log    *slog.Logger
	state  *daemonState
	client *clientv3.Client
	mgr    *subnet.Manager
	store  *workload.Store // policies, namespaces, containers: beside the leases
	// backends are the data paths weftd can run, by Backend.Type.
	backends backend.Registry
	// etcdPorts are the embedded etcd's TCP ports (none without one),
	// which the container guard keeps containers from.
	etcdPorts []uint16
	// publicIP and publicIPv6 are the addresses this node publishes
	// (found before the lease is taken; invalid when none).
	publicIP, publicIPv6 netip.Addr
}

func newDaemon(opts *options, log *slog.Logger) *weftd {
	return &weftd{opts: opts, log: log, backends: all.Registry(), state: &daemonState{etcdLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "weft_etcd_request_duration_seconds",
		Help:    "Round-trip time of weftd's periodic etcd probe.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})}}
}

// run brings the node up and blocks until ctx is cancelled or something
// fatal happens (lease lost, data path failed). Its phases: check the
// configuration, take the lock, reach etcd and read the network config,
// take a lease with the backend's attributes, start the backend and
// follow the leases, serve the containers, say ready; wait.
func (d *weftd) run(ctx context.Context) error {
	wanted, err := d.preflight()
	if err != nil {
		return err
	}
	// One weftd per network namespace: a second one exits here, before it
	// touches the device, the port or etcd of the first.
	lock, err := d.lock()
	if err != nil {
		return err
	}
	defer lock.Release()
	// A second weftd that the lock does not stop (its own --lock-file, or
	// another /run, as in a container on the host's network) finds the
	// first one's TUN held and exits here too: before it took the lease,
	// replaced the guard's tables or cleaned "stale" direct routes.
	if err := tundev.CheckNotHeld(d.opts.tunName); err != nil {
		return fmt.Errorf("another weftd runs in this network namespace (with another --lock-file?): %w; refusing to start", err)
	}
	// Likewise one whose backend has no TUN (vxlan) finds the first one's
	// CNI socket served.
	if err := daemonsock.CheckNotServed(d.opts.cniSocket); err != nil {
		return fmt.Errorf("another weftd runs on this node (with another --lock-file?): %w; refusing to start", err)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	// Every goroutine below ends on cancel; stop cancels and waits, and is
	// deferred again after each resource so it runs before that one closes.
	var wg sync.WaitGroup
	stop := func() { cancel(nil); wg.Wait() }
	defer stop()

	if d.opts.embeddedEtcdDir != "" {
		closeEtcd, err := d.startEmbeddedEtcd()
		if err != nil {
			return err
		}
		defer closeEtcd()
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

	cli, cfg, err := d.connect(ctx, &wg, wanted)
	if cli != nil {
		defer cli.Close()
		defer stop() // goroutines using the client end before it closes
	}
	if err != nil {
		return err
	}

	// The backend: made for this node, it names what the lease carries.
	be, lease, err := d.takeLease(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := be.Close(); err != nil {
			d.log.Warn("close backend", "err", err)
		}
	}()
	defer stop() // the backend's loops end before it closes
	port := 0    // the container guard keeps containers from the backend's UDP port
	if p, ok := be.(interface{ UDPPort() int }); ok {
		port = p.UDPPort()
		ep := netip.AddrPortFrom(d.state.endpoint.Load().Addr(), uint16(port))
		d.state.endpoint.Store(&ep) // /status: the port peers reach this node on
	}
	network, network6 := cfg.Network, cfg.IPv6Network
	if !cfg.HasIPv4() || !lease.Subnet.IsValid() {
		network = netip.Prefix{}
	}
	if !cfg.HasIPv6() || !lease.IPv6Subnet.IsValid() {
		network6 = netip.Prefix{}
	}
	if err := d.installGuard(network, lease.Subnet, network6, lease.IPv6Subnet, port); err != nil {
		return err
	}
	if err := be.Start(ctx, lease); err != nil {
		if backend.IsConfigError(err) {
			return asConfigError(err)
		}
		return err
	}
	d.state.backend.Store(&be)
	d.follow(ctx, &wg, cancel, cfg, lease, be)

	// Containers: publish what this node had, then take CNI requests.
	publicIP := d.state.endpoint.Load().Addr().String()
	d.startPolicy(ctx, &wg, publicIP) // rules from the views below; the previous run's stay until then
	wg.Go(func() { d.keepTables(ctx, tableCheckInterval) })
	if err := d.startRegistry(ctx, &wg, publicIP, lease.Subnet, lease.IPv6Subnet); err != nil {
		return err
	}
	wg.Go(func() { d.watchPolicyView(ctx) })
	stopMasq, err := d.startIPMasq(masq.Prefixes{Network: network, Subnet: lease.Subnet, Network6: network6, Subnet6: lease.IPv6Subnet})
	if err != nil {
		return err
	}
	defer stopMasq()

	if err := d.writeSubnetFiles(lease.FileEnv(cfg, be.MTU(), d.opts.ipMasq)); err != nil {
		return err
	}
	d.waitPolicyInForce(ctx)
	if d.opts.aqm.Target > 0 && cfg.Backend.Type != subnet.BackendUDP {
		d.log.Warn("--aqm-target applies to the udp backend's TUN queue only; this network's backend does not use it", "backend", cfg.Backend.Type, "aqm-target", d.opts.aqm.Target)
	}
	d.log.Info("ready", "subnet", lease.String(), "backend", cfg.Backend.Type, "tun", d.opts.tunName, "containerMTU", be.MTU(), "subnetFile", d.opts.subnetFile)
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		d.log.Warn("systemd notify", "err", err)
	}

	<-ctx.Done()
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if cfg.Backend.Type == subnet.BackendUDP || cfg.Backend.Type == subnet.BackendHostGW {
		d.log.Info("shutting down: lease kept for the restart, TUN and routes removed")
	} else {
		d.log.Info("shutting down: lease kept for the restart; the " + cfg.Backend.Type + " backend's kernel state stays (the kernel forwards on)")
	}
	return nil
}

// preflight checks what can be checked before touching anything: the
// --network-config to store, the etcd client options, the directories
// weftd writes.
func (d *weftd) preflight() (*subnet.Config, error) {
	var wanted *subnet.Config
	if d.opts.networkConfig != "" {
		cfg, err := d.backends.ParseConfig([]byte(d.opts.networkConfig))
		if err != nil {
			return nil, configErrorf("--network-config: %w", err)
		}
		wanted = cfg
	}
	if err := d.clientOptions().Check(); err != nil {
		return nil, asConfigError(err)
	}
	if err := writecheck.Check(d.opts.writableDirs()); err != nil {
		return nil, asConfigError(err)
	}
	return wanted, nil
}

// startEmbeddedEtcd runs the embedded etcd (--embedded-etcd-dir).
func (d *weftd) startEmbeddedEtcd() (stop func(), err error) {
	emb, err := embedded.Start(embedded.Options{
		Dir:       d.opts.embeddedEtcdDir,
		ClientURL: d.opts.embeddedEtcdListen,
		PeerURL:   d.opts.embeddedEtcdPeerListen,
		Logger:    d.log.With("component", "embedded-etcd"),
	})
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	d.etcdPorts = emb.ListenPorts()
	d.log.Info("embedded etcd running", "endpoints", emb.Endpoints(), "dir", d.opts.embeddedEtcdDir)
	return func() { emb.Close() }, nil
}

// connect makes the etcd client and the lease manager, starts the etcd
// probe, stores --network-config if etcd has none and reads the network
// config (retrying while one is missing or not one this weftd can run).
// The client is returned (to close) even with an error.
func (d *weftd) connect(ctx context.Context, wg *sync.WaitGroup, wanted *subnet.Config) (*clientv3.Client, *subnet.Config, error) {
	// With credentials the client authenticates inside NewClient, so an
	// etcd that is not there yet fails it: retry like any other call.
	try := d.attempts()
	cli, err := retry.Do(ctx, try, "connect to etcd", func(context.Context) (*clientv3.Client, error) {
		return subnet.NewClient(d.clientOptions())
	})
	if err != nil {
		return nil, nil, err
	}
	d.client = cli
	d.mgr = subnet.NewManager(cli, subnet.Options{
		Prefix:      d.opts.etcdPrefix,
		TTL:         d.opts.leaseTTL,
		RenewMargin: d.opts.leaseRenewMargin,
		Logger:      d.log.With("component", "subnet"),
	})
	d.store = workload.New(d.mgr, d.log.With("component", "subnet"))
	d.state.store.Store(d.store)
	d.state.mgr.Store(d.mgr)
	wg.Go(func() { d.probeEtcd(ctx) })

	if wanted != nil {
		created, err := retry.Do(ctx, try, "store network config", func(ctx context.Context) (bool, error) {
			return d.mgr.EnsureConfig(ctx, wanted)
		})
		if err != nil {
			return cli, nil, err
		}
		if created {
			d.log.Info("stored network config in etcd", "network", wanted.Network, "subnetLen", wanted.SubnetLen)
		}
	}
	cfg, err := retry.Do(ctx, try, "read network config", func(ctx context.Context) (*subnet.Config, error) {
		cfg, err := d.mgr.GetConfig(ctx)
		if err == nil {
			// A config this weftd cannot run is retried like an
			// unparsable one: weftctl config set may fix it.
			err = d.backends.Check(cfg)
		}
		return cfg, err
	})
	return cli, cfg, err
}

// takeLease finds the underlay, makes the backend of the network config
// for this node and acquires the lease with the backend's attributes
// (refusing to renumber a host that had another subnet).
func (d *weftd) takeLease(ctx context.Context, cfg *subnet.Config) (backend.Backend, subnet.Lease, error) {
	u, err := d.findUnderlay(cfg)
	if err != nil {
		return nil, subnet.Lease{}, err
	}
	main := u.PublicIP
	if !main.IsValid() {
		main = u.PublicIPv6 // an IPv6-only underlay
	}
	ep := netip.AddrPortFrom(main, uint16(cfg.Backend.Port))
	d.state.endpoint.Store(&ep)
	d.publicIP, d.publicIPv6 = u.PublicIP, u.PublicIPv6
	if u.PublicIPv6.IsValid() {
		d.state.publicIPv6.Store(&u.PublicIPv6)
	}
	d.log.Info("underlay", "iface", u.Name, "publicIP", u.PublicIP, "publicIPv6", u.PublicIPv6, "mtu", u.MTU)

	be, err := d.backends.New(backend.Node{
		Config:   cfg,
		Underlay: backend.Underlay{Name: u.Name, Index: u.Index, PublicIP: u.PublicIP, PublicIPv6: u.PublicIPv6, MTU: u.MTU},
		Options:  backend.Options{DeviceName: d.opts.tunName, Queues: d.opts.queues, AQMTarget: d.opts.aqm.Target, AQMInterval: d.opts.aqm.Interval, StateDir: d.opts.stateDir, UAPIName: d.opts.wireguardUAPIName},
		Log:      d.log.With("component", "backend"),
	})
	if err != nil {
		return nil, subnet.Lease{}, asConfigError(err)
	}
	// The ports first: a second weftd that the lock does not stop (and
	// whose --tun-name differs) gives up here, before it rewrites the
	// lease, replaces the guard or cleans the first one's direct routes.
	if pc, ok := be.(backend.PortChecker); ok {
		if err := pc.CheckPortsFree(); err != nil {
			_ = be.Close()
			return nil, subnet.Lease{}, fmt.Errorf("another weftd runs in this network namespace (with another --lock-file and --tun-name?): %w; refusing to start", err)
		}
	}
	attrs, err := be.LeaseAttrs()
	if err == nil {
		attrs = attrs.WithPublicIPs(u.PublicIP, u.PublicIPv6)
		err = attrs.Validate()
	}
	if err != nil {
		_ = be.Close()
		err = fmt.Errorf("this node's lease: %w", err)
		if backend.IsConfigError(err) {
			// The host cannot run this backend (vxlan: its port held, its
			// device name taken): found before the lease is taken.
			err = asConfigError(err)
		}
		return nil, subnet.Lease{}, err
	}
	try := d.attempts()
	previous := subnetfile.Previous(d.opts.subnetFile, d.opts.flannelSubnetFile, func(err error) {
		d.log.Warn("ignoring unreadable subnet file from an earlier run", "err", err)
	})
	previous6 := subnetfile.PreviousIPv6(d.opts.subnetFile, d.opts.flannelSubnetFile, func(err error) {})
	for _, p := range []netip.Prefix{previous, previous6} {
		if !p.IsValid() || (p.Addr().Is4() && !cfg.HasIPv4()) || (p.Addr().Is6() && !cfg.HasIPv6()) {
			// A family the network no longer has: nothing to come back on.
			continue
		}
		if _, err := retry.Do(ctx, try, "check previous subnet", func(ctx context.Context) (struct{}, error) {
			return struct{}{}, d.checkPrevious(ctx, cfg, p, attrs)
		}); err != nil {
			_ = be.Close()
			return nil, subnet.Lease{}, err
		}
	}
	lease, err := retry.Do(ctx, try, "acquire subnet lease", func(ctx context.Context) (subnet.Lease, error) {
		l, err := d.mgr.AcquireLease(ctx, cfg, attrs, previous, previous6)
		if errors.Is(err, subnet.ErrPoolExhausted) {
			return l, retry.Permanent{Err: err}
		}
		return l, err
	})
	if err != nil {
		_ = be.Close()
		return nil, subnet.Lease{}, err
	}
	d.setLease(lease)
	d.log.Info("holding subnet lease", "subnet", lease.String(), "expires", lease.Expiration)
	return be, lease, nil
}

// follow starts the goroutines that keep the node in the network: the
// lease watcher feeding the backend (its first snapshot fills the peers;
// forwarding starts at once, and a packet for a peer not yet known gets
// ICMP net unreachable, exactly as for an unleased subnet), the backend's
// Run and the lease keeper. Each ends weftd (cancel) when it fails.
func (d *weftd) follow(ctx context.Context, wg *sync.WaitGroup, cancel context.CancelCauseFunc, cfg *subnet.Config, lease subnet.Lease, be backend.Backend) {
	wg.Go(func() {
		err := d.mgr.WatchLeases(ctx, cfg, lease.Primary(), be.Apply)
		if err != nil && ctx.Err() == nil {
			cancel(fmt.Errorf("watch leases: %w", err))
		}
	})
	wg.Go(func() {
		d.state.dataRunning.Store(true)
		err := be.Run(ctx)
		d.state.dataRunning.Store(false)
		if ctx.Err() == nil {
			if err == nil {
				err = errors.New("stopped unexpectedly")
			}
			if errors.Is(err, backend.ErrDeviceLost) {
				d.state.deviceLost.Store(true)
			}
			cancel(fmt.Errorf("data path: %w", err))
		}
	})
	wg.Go(func() {
		err := d.mgr.KeepLeaseUpdating(ctx, cfg, lease, d.setLease, d.attrsUpdates(ctx, wg, be))
		if err != nil && ctx.Err() == nil {
			cancel(fmt.Errorf("subnet lease: %w", err))
		}
	})
}

// lock takes the daemon's lock (--lock-file, or the lock of this network
// namespace under /run/weft).
func (d *weftd) lock() (*nodelock.Lock, error) {
	path := d.opts.lockFile
	if path == "" {
		var err error
		if path, err = nodelock.DefaultPath(); err != nil {
			return nil, err
		}
	}
	return nodelock.Acquire(path)
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
	d.mgr.Probe(ctx, 2*time.Second, func(rtt time.Duration) {
		d.state.etcdLatency.Observe(rtt.Seconds())
		d.state.etcdOK.Store(time.Now().UnixNano())
	})
}

// checkPrevious refuses to start when this host cannot come back on the
// subnet it used before (as recorded in its subnet file): taking a new
// subnet would silently renumber a host whose containers use the old one.
func (d *weftd) checkPrevious(ctx context.Context, cfg *subnet.Config, previous netip.Prefix, attrs subnet.LeaseAttrs) error {
	err := d.mgr.CheckPrevious(ctx, cfg, previous, attrs)
	if errors.Is(err, subnet.ErrWouldRenumber) {
		return retry.Permanent{Err: fmt.Errorf("this host used subnet %s (subnet file %s): %w; "+
			"refusing to renumber a host whose containers may still use the old subnet: "+
			"stop them and remove %s to take a new subnet", previous, d.opts.subnetFile, err, d.opts.subnetFile)}
	}
	return err
}

// findUnderlay finds the underlay (--iface, --public-ip, --public-ipv6;
// an IPv6 address by default when the network has IPv6) and checks it
// against the network config; configuration errors are weftd's (exit 78).
func (d *weftd) findUnderlay(cfg *subnet.Config) (underlay.Underlay, error) {
	u, err := underlay.FindWith(underlay.Options{Iface: d.opts.iface, PublicIP: d.opts.publicIP, PublicIPv6: d.opts.publicIPv6, WantIPv6: cfg.HasIPv6()})
	if errors.Is(err, underlay.ErrConfig) {
		return u, asConfigError(err)
	}
	if err != nil {
		return u, err
	}
	if !cfg.HasIPv4() && !u.PublicIPv6.IsValid() {
		return u, configErrorf("network config: the network is IPv6-only (EnableIPv4 false) and interface %s has no global IPv6 address: set --public-ipv6", u.Name)
	}
	if !cfg.HasIPv4() && d.opts.publicIP == "" {
		u.PublicIP = netip.Addr{} // as flanneld: an IPv6-only network's nodes are reached over IPv6
	}
	for _, ip := range []netip.Addr{u.PublicIP, u.PublicIPv6} {
		if !ip.IsValid() {
			continue
		}
		if err := cfg.CheckUnderlay(ip, u.Prefixes); err != nil {
			return u, configErrorf("network config: %w", err)
		}
	}
	return u, nil
}

// attrsChanger is a backend whose lease attributes change while it runs
// (the wireguard backend's rotated key).
type attrsChanger interface {
	LeaseAttrsChanged() <-chan struct{}
}

// attrsUpdates feeds the lease keeper the backend's new attributes each
// time they change (nil: a backend whose attributes never change).
func (d *weftd) attrsUpdates(ctx context.Context, wg *sync.WaitGroup, be backend.Backend) <-chan subnet.LeaseAttrs {
	c, ok := be.(attrsChanger)
	if !ok {
		return nil
	}
	updates := make(chan subnet.LeaseAttrs)
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.LeaseAttrsChanged():
			}
			attrs, err := be.LeaseAttrs()
			if err != nil {
				d.log.Error("new lease attributes", "err", err)
				continue
			}
			attrs = attrs.WithPublicIPs(d.publicIP, d.publicIPv6)
			select {
			case updates <- attrs:
			case <-ctx.Done():
				return
			}
		}
	})
	return updates
}
