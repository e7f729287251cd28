package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/subnet"
)

// backendHolder lets daemonState hold a backend.Backend atomically.
type backendHolder struct{ backend.Backend }

// udpPort is implemented by backends that receive on a UDP port, which
// the container guard keeps containers from.
type udpPort interface{ UDPPort() int }

// runBackend is the rest of run for a backend of the registry: its lease
// attributes, the lease, Start, the lease watcher feeding Apply, Run, and
// the containers' side as for udp.
func (d *weftd) runBackend(ctx context.Context, cancel context.CancelCauseFunc, wg *sync.WaitGroup, f backend.Factory, cfg *subnet.Config, u underlay, try attempts) error {
	stop := func() { cancel(nil); wg.Wait() }
	ifc, err := net.InterfaceByName(u.name)
	if err != nil {
		return fmt.Errorf("underlay %s: %w", u.name, err)
	}
	node := backend.Node{
		Config:   cfg,
		Underlay: backend.Underlay{Name: u.name, Index: ifc.Index, PublicIP: u.publicIP, MTU: u.mtu},
		Options:  backend.Options{DeviceName: d.opts.tunName, Queues: d.opts.queues},
		Log:      d.log.With("component", "backend", "backend", cfg.Backend.Type),
	}
	b, err := backend.Registry{cfg.Backend.Type: f}.New(node)
	if err != nil {
		return asBackendError(err)
	}
	defer func() {
		if err := b.Close(); err != nil {
			d.log.Warn("close backend", "err", err)
		}
	}()
	attrs, err := b.LeaseAttrs()
	if err != nil {
		return asBackendError(err)
	}
	lease, err := d.acquireLease(ctx, try, cfg, attrs)
	if err != nil {
		return err
	}
	port := 0
	if p, ok := b.(udpPort); ok {
		port = p.UDPPort()
	}
	if err := d.installGuard(cfg.Network, lease.Subnet, port); err != nil {
		return err
	}
	if err := b.Start(ctx, lease); err != nil {
		return asBackendError(fmt.Errorf("backend %s: %w", cfg.Backend.Type, err))
	}
	d.state.backend.Store(&backendHolder{b})
	defer stop() // the goroutines below end before the backend closes

	wg.Go(func() {
		err := d.mgr.WatchLeases(ctx, cfg, lease.Subnet, b.Apply)
		if err != nil && ctx.Err() == nil {
			cancel(fmt.Errorf("watch leases: %w", err))
		}
	})
	wg.Go(func() {
		d.state.dataRunning.Store(true)
		err := b.Run(ctx)
		d.state.dataRunning.Store(false)
		if ctx.Err() == nil {
			if err == nil {
				err = errors.New("stopped unexpectedly")
			}
			if errors.Is(err, backend.ErrDeviceLost) {
				d.state.deviceLost.Store(true)
			}
			cancel(fmt.Errorf("backend %s: %w", cfg.Backend.Type, err))
		}
	})
	wg.Go(func() {
		err := d.mgr.KeepLease(ctx, cfg, lease, d.setLease)
		if err != nil && ctx.Err() == nil {
			cancel(fmt.Errorf("subnet lease: %w", err))
		}
	})
	return d.serveContainers(ctx, wg, cfg, attrs, lease, b.MTU(),
		"shutting down: lease kept for the restart; the "+cfg.Backend.Type+" backend's kernel state stays (the kernel forwards on)")
}

// asBackendError makes a backend's configuration error weftd's (exit 78).
func asBackendError(err error) error {
	if backend.IsConfigError(err) {
		return configErrorf("%w", err)
	}
	return err
}
