package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftnet/weft/cni"
	"github.com/weftnet/weft/policy"
	"github.com/weftnet/weft/subnet"
)

// policyEngine turns each view of endpoints, namespaces and policies into
// this node's rules and installs them (policy.Compile, policy.Enforcer).
// It runs on the view watcher's goroutine; its counters are read by the
// metrics collector concurrently.
type policyEngine struct {
	enf    *policy.Enforcer
	node   string // this node's public IP, as endpoints name it
	bridge string
	log    *slog.Logger

	latest atomic.Pointer[subnet.View]
	kick   chan struct{}
	// local is the CNI socket's registry (nil without one): this node's
	// containers as the plugin registered them, merged into every view.
	local atomic.Pointer[endpointRegistry]

	// enforced is this node's endpoints in the rules in force; appliedC is
	// closed and replaced after every successful apply.
	mu       sync.Mutex
	enforced map[netip.Addr]bool
	appliedC chan struct{}

	applied        atomic.Uint64
	failed         atomic.Uint64
	lastDurationNs atomic.Int64
	lastRevision   atomic.Int64
	isolatedIn     atomic.Int64
	isolatedOut    atomic.Int64
}

func newPolicyEngine(node, bridge string, log *slog.Logger) *policyEngine {
	return &policyEngine{enf: policy.NewEnforcer(policy.EnforcerOptions{Bridge: bridge}), node: node, bridge: bridge, log: log,
		kick: make(chan struct{}, 1), appliedC: make(chan struct{})}
}

// applyView compiles v for this node and replaces the kernel's rules in one
// transaction. On any error the rules in force stay as they were (an
// unreadable policy must not open what it closed).
func (p *policyEngine) applyView(v subnet.View) error {
	start := time.Now()
	err := p.apply(v)
	p.lastDurationNs.Store(int64(time.Since(start)))
	if err != nil {
		p.failed.Add(1)
		p.log.Error("policy not applied; previous rules stay in force", "revision", v.Revision, "err", err)
		return err
	}
	p.applied.Add(1)
	p.lastRevision.Store(v.Revision)
	p.log.Info("policy applied", "revision", v.Revision, "policies", len(v.Policies), "endpoints", len(v.Endpoints),
		"isolatedIngress", p.isolatedIn.Load(), "isolatedEgress", p.isolatedOut.Load(), "took", time.Since(start).Round(time.Microsecond))
	return nil
}

func (p *policyEngine) apply(v subnet.View) error {
	if r := p.local.Load(); r != nil {
		v = withLocalEndpoints(v, r.endpoints())
	}
	in, err := policyInput(v, p.node)
	if err != nil {
		return err
	}
	rs, err := policy.Compile(in)
	if err != nil {
		return err
	}
	// Same-host traffic crosses the bridge without the IPv4 hooks unless
	// the bridge passes it there; the bridge appears with the first
	// container, so check on every apply (cheap, idempotent).
	if _, err := policy.EnableBridgeFiltering(0, p.bridge); err != nil {
		return err
	}
	if err := p.enf.Apply(rs); err != nil {
		return err
	}
	in4, out4 := rs.Pods()
	p.isolatedIn.Store(int64(in4))
	p.isolatedOut.Store(int64(out4))
	local := map[netip.Addr]bool{}
	for _, ep := range in.Endpoints {
		if ep.Node == p.node {
			local[ep.IP] = true
		}
	}
	p.markEnforced(local)
	return nil
}

// markEnforced records the local endpoints of the rules now in force and
// wakes waitEnforced.
func (p *policyEngine) markEnforced(local map[netip.Addr]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.enforced = local
	close(p.appliedC)
	p.appliedC = make(chan struct{})
}

// waitEnforced returns once the rules in force were built with this node's
// endpoint ip (so policies selecting it apply), or when ctx ends.
func (p *policyEngine) waitEnforced(ctx context.Context, ip netip.Addr) error {
	for {
		p.mu.Lock()
		done, next := p.enforced[ip], p.appliedC
		p.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-next:
		}
	}
}

// withLocalEndpoints returns v with this node's containers as the local
// registry holds them: the etcd view loses them when the node's endpoint
// lease expires (an etcd partition longer than --endpoint-ttl) until weftd
// publishes them again, and this node's own rules must not drop them
// meanwhile (a container isolated by policy would be open). An endpoint of
// the registry replaces the view's of the same IP (addresses of this
// node's subnet are its own); the view's others stay. v is not modified.
func withLocalEndpoints(v subnet.View, local []subnet.Endpoint) subnet.View {
	if len(local) == 0 {
		return v
	}
	mine := make(map[netip.Addr]bool, len(local))
	for _, ep := range local {
		mine[ep.IP] = true
	}
	eps := make([]subnet.Endpoint, 0, len(v.Endpoints)+len(local))
	for _, ep := range v.Endpoints {
		if !mine[ep.IP] {
			eps = append(eps, ep)
		}
	}
	eps = append(eps, local...)
	sort.Slice(eps, func(i, j int) bool { return eps[i].IP.Less(eps[j].IP) })
	v.Endpoints = eps
	return v
}

// policyInput converts the stored view into policy.Input. A stored policy
// that does not parse (weftctl validates before storing, so only a foreign
// writer can cause this) is an error for the whole view.
func policyInput(v subnet.View, node string) (policy.Input, error) {
	in := policy.Input{Node: node}
	for _, ep := range v.Endpoints {
		pe := policy.Endpoint{IP: ep.IP, Namespace: ep.Namespace, Name: ep.Pod, Labels: ep.Labels, Node: ep.Node}
		if ep.Node == node && ep.ContainerID != "" && ep.IfName != "" {
			pe.HostIf = cni.HostVethName(ep.ContainerID, ep.IfName) // the plugin's name for the host side
		}
		in.Endpoints = append(in.Endpoints, pe)
	}
	for _, ns := range v.Namespaces {
		in.Namespaces = append(in.Namespaces, policy.Namespace{Name: ns.Name, Labels: ns.Labels})
	}
	var errs []error
	for _, sp := range v.Policies {
		nps, err := policy.ParseManifests(sp.JSON)
		if err == nil && (len(nps) != 1 || nps[0].Namespace != sp.Namespace || nps[0].Name != sp.Name) {
			err = fmt.Errorf("stored under %s/%s but holds another object", sp.Namespace, sp.Name)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("stored policy %s/%s: %w", sp.Namespace, sp.Name, err))
			continue
		}
		in.Policies = append(in.Policies, nps[0])
	}
	return in, errors.Join(errs...)
}

// policyCollector exposes the engine's state at scrape time.
type policyCollector struct {
	state    *daemonState
	drops    *prometheus.Desc
	applies  *prometheus.Desc
	duration *prometheus.Desc
	isolated *prometheus.Desc
	revision *prometheus.Desc
}

func newPolicyCollector(state *daemonState) *policyCollector {
	return &policyCollector{
		state:    state,
		drops:    prometheus.NewDesc("weft_policy_drops_total", "Packets dropped by network policy, by direction (ingress: a new connection to an isolated container here, egress: from one; ipv6-bridged: IPv6 other than ICMPv6 between two containers on the bridge or from one to this host; spoofed-source: IPv4 from a container's port with another container's or a made-up source).", []string{"direction"}, nil),
		applies:  prometheus.NewDesc("weft_policy_applies_total", "Rule set rebuilds, by result (ok, error: previous rules kept).", []string{"result"}, nil),
		duration: prometheus.NewDesc("weft_policy_last_apply_seconds", "Time the last rebuild took (compile and one nftables transaction).", nil, nil),
		isolated: prometheus.NewDesc("weft_policy_isolated_containers", "This node's containers isolated by policy, by direction.", []string{"direction"}, nil),
		revision: prometheus.NewDesc("weft_policy_revision", "etcd revision of the view the rules in force were built from.", nil, nil),
	}
}

func (c *policyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.drops, c.applies, c.duration, c.isolated, c.revision} {
		ch <- d
	}
}

func (c *policyCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.state.policy.Load()
	if p == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.applies, prometheus.CounterValue, float64(p.applied.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(c.applies, prometheus.CounterValue, float64(p.failed.Load()), "error")
	ch <- prometheus.MustNewConstMetric(c.duration, prometheus.GaugeValue, time.Duration(p.lastDurationNs.Load()).Seconds())
	ch <- prometheus.MustNewConstMetric(c.isolated, prometheus.GaugeValue, float64(p.isolatedIn.Load()), "ingress")
	ch <- prometheus.MustNewConstMetric(c.isolated, prometheus.GaugeValue, float64(p.isolatedOut.Load()), "egress")
	ch <- prometheus.MustNewConstMetric(c.revision, prometheus.GaugeValue, float64(p.lastRevision.Load()))
	if d, err := p.enf.Drops(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(d.Ingress), "ingress")
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(d.Egress), "egress")
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(d.IPv6), "ipv6-bridged")
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(d.Spoofed), "spoofed-source")
	}
}

// policyRetry is how long the engine waits before rebuilding again after a
// failed apply when no newer view arrives.
const policyRetry = 2 * time.Second

// offer hands the engine a newer view; only the latest is applied.
func (p *policyEngine) offer(v subnet.View) {
	p.latest.Store(&v)
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// run applies offered views until ctx ends, retrying a failed apply.
func (p *policyEngine) run(ctx context.Context) {
	retry := time.NewTimer(0)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-retry.C:
		}
		v := p.latest.Load()
		if v == nil {
			continue
		}
		if err := p.applyView(*v); err != nil {
			retry.Reset(policyRetry)
		}
	}
}

// startPolicy starts enforcement, if enabled, for this node; views reach
// it through offerPolicyView.
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
	p := newPolicyEngine(node, d.opts.policyBridge, d.log.With("component", "policy"))
	d.state.policy.Store(p)
	wg.Go(func() { p.run(ctx) })
}

// policyWait bounds how long a CNI ADD waits for the container's rules.
const policyWait = 5 * time.Second

// waitPolicyFor holds a CNI ADD until the rules in force include the new
// container (so it never runs unisolated when a policy selects it), for at
// most policyWait; then it warns and lets the ADD succeed.
func (d *weftd) waitPolicyFor(ctx context.Context, ip netip.Addr) {
	p := d.state.policy.Load()
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, policyWait)
	defer cancel()
	start := time.Now()
	if err := p.waitEnforced(ctx, ip); err != nil {
		p.log.Warn("container attached before its policy rules were in force", "ip", ip, "waited", time.Since(start).Round(time.Millisecond), "err", err)
	}
}

// offerPolicyView passes a view of endpoints, namespaces and policies to
// the engine (a no-op when enforcement is off).
func (d *weftd) offerPolicyView(v subnet.View) {
	if p := d.state.policy.Load(); p != nil {
		p.offer(v)
	}
}
