package main

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/weftnet/weft/policy"
	"github.com/weftnet/weft/policy/engine"
	"github.com/weftnet/weft/workload"
)

// startPolicy starts enforcement, if enabled, for this node (policy/engine
// does the work); views reach it through watchPolicyView. The engine checks
// its tables' contents every tableCheckInterval.
func (d *weftd) startPolicy(ctx context.Context, wg *sync.WaitGroup, node string) {
	if !d.opts.networkPolicy {
		// The operator turned enforcement off: rules a previous run left in
		// force must not keep isolating containers nobody manages now.
		if err := policy.NewEnforcer(policy.EnforcerOptions{}).Remove(); err != nil {
			d.log.Warn("network policy off, but its tables could not be removed", "err", err)
		}
		d.log.Info("network policy enforcement off (--network-policy=false): tables ip/ip6 " + policy.DefaultTable + " removed")
		return
	}
	if d.opts.policyBridge != "" && !policy.BridgeNetfilterLoaded("/proc") {
		d.log.Error("br_netfilter is not loaded: traffic between containers on the same host is NOT policed "+
			"(only traffic to and from other hosts is); load it with 'modprobe br_netfilter' and at boot "+
			"with /etc/modules-load.d/weft.conf (make install puts it there), then restart weftd",
			"missing", "/proc/sys/net/bridge/bridge-nf-call-iptables")
	}
	p := engine.New(engine.Options{Node: node, Bridge: d.opts.policyBridge, Log: d.log.With("component", "policy")})
	d.state.policy.Store(p)
	wg.Go(func() { p.Run(ctx, tableCheckInterval) })
}

// policyWait bounds how long a CNI ADD waits for the container's rules.
const policyWait = 5 * time.Second

// waitPolicyFor holds a CNI ADD until the rules in force include the new
// container, for at most policyWait. If they are not in force by then the
// ADD fails (the plugin removes the interface again and the runtime
// deletes the container): a container is never attached before its rules
// are in force (fails closed).
func (d *weftd) waitPolicyFor(ctx context.Context, ip netip.Addr) error {
	p := d.state.policy.Load()
	if p == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, policyWait)
	defer cancel()
	start := time.Now()
	if err := p.WaitEnforced(ctx, ip); err != nil {
		d.log.Warn("container refused: its policy rules were not in force in time", "ip", ip, "waited", time.Since(start).Round(time.Millisecond), "err", err)
		return fmt.Errorf("network policy rules for %s not in force after %s; not attached (see weftd's log): %w", ip, policyWait, err)
	}
	return nil
}

// policyStartWait bounds how long weftd waits, before it tells systemd it
// is ready, for its first policy rules to be in force.
const policyStartWait = 10 * time.Second

// waitPolicyInForce waits (at most policyStartWait) until the engine has
// rules from a view in force, so that READY=1 and /readyz agree at start.
// If they are not in force by then weftd goes on: /readyz says not-ready
// with the reason and CNI ADDs are refused until they are (fails closed).
func (d *weftd) waitPolicyInForce(ctx context.Context) {
	p := d.state.policy.Load()
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, policyStartWait)
	defer cancel()
	if err := p.WaitApplied(ctx); err != nil && ctx.Err() != nil {
		d.log.Warn("network policy not in force yet; new containers are refused until it is", "waited", policyStartWait)
	}
}

// watchPolicyView follows the endpoints, namespaces and policies in etcd
// and hands every new view to the engine until ctx ends.
func (d *weftd) watchPolicyView(ctx context.Context) {
	_ = d.store.WatchView(ctx, 0, func(v workload.View) {
		d.log.Debug("policy view", "revision", v.Revision, "endpoints", len(v.Attachments), "namespaces", len(v.Namespaces), "policies", len(v.Policies))
		if p := d.state.policy.Load(); p != nil {
			p.Offer(v)
		}
	})
}
