// Package engine runs network policy on one node: it turns each view of
// endpoints, namespaces and policies (workload.View) into this node's rules
// (policy.Compile) and keeps them installed (policy.Enforcer), puts back
// what anyone else changes in its tables, and tells the CNI socket when a
// new container's rules are in force. weftd wires it; it fails closed:
// what it cannot compute or install leaves containers isolated.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftnet/weft/policy"
	"github.com/weftnet/weft/workload"
)

// Retry is how long the engine waits before rebuilding again after a
// failed apply when no newer view arrives.
const Retry = 2 * time.Second

// Options configure an Engine.
type Options struct {
	// Node is this node's public IP, as endpoints name it.
	Node string
	// Bridge is the containers' bridge ("" for none).
	Bridge string
	Log    *slog.Logger
	// Enforcer installs the rules; a policy.Enforcer (the current
	// namespace, policy.DefaultTable) if nil.
	Enforcer Installer
	// EnableBridgeFiltering, if set, is called before every install (the
	// bridge appears with the first container); policy.EnableBridgeFiltering
	// of Bridge in the current namespace if nil.
	EnableBridgeFiltering func() error
}

// Installer puts rule sets in force (policy.Enforcer; tests use fakes).
type Installer interface {
	// Apply replaces the rules in force with rs, atomically; on an error
	// the previous ones stay.
	Apply(rs policy.RuleSet) error
	// Changed tells where the rules in force differ from what the last
	// Apply installed ("" for nowhere).
	Changed() (string, error)
	// Drops counts packets dropped by the rules, never going backwards.
	Drops() (policy.DropCounts, error)
}

// Engine applies views for one node. It runs on one goroutine (Run); the
// other methods may be called from any.
type Engine struct {
	enf    Installer
	node   string
	log    *slog.Logger
	bridge func() error

	latest atomic.Pointer[workload.View]
	kick   chan struct{}
	parsed parsed // the stored policies as last parsed (Run's goroutine only)
	// local returns this node's containers as the CNI socket registered
	// them, merged into every view (nil without a socket).
	local atomic.Pointer[func() []workload.Attachment]

	// enforced is this node's endpoints in the rules in force; appliedC is
	// closed and replaced after every successful apply.
	mu       sync.Mutex
	enforced map[netip.Addr]bool
	appliedC chan struct{}
	rejected []Rejected // the policies skipped in the rules in force

	applied        atomic.Uint64
	failed         atomic.Uint64
	restored       atomic.Uint64
	lastDurationNs atomic.Int64
	lastRevision   atomic.Int64
	isolatedIn     atomic.Int64
	isolatedOut    atomic.Int64
	rejectedN      atomic.Int64
}

// Rejected is a stored policy the engine could not use: its namespace is
// isolated instead (fails closed) until it is fixed or deleted.
type Rejected struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Reason    string `json:"reason"`
}

// New returns an Engine; it touches the kernel only once it runs.
func New(o Options) *Engine {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Enforcer == nil {
		o.Enforcer = policy.NewEnforcer(policy.EnforcerOptions{Bridge: o.Bridge})
	}
	if o.EnableBridgeFiltering == nil {
		bridge := o.Bridge
		o.EnableBridgeFiltering = func() error {
			_, err := policy.EnableBridgeFiltering(0, bridge)
			return err
		}
	}
	return &Engine{enf: o.Enforcer, node: o.Node, log: o.Log, bridge: o.EnableBridgeFiltering,
		kick: make(chan struct{}, 1), appliedC: make(chan struct{}), parsed: parsed{}}
}

// SetLocal gives the engine this node's containers as registered locally:
// they stay in the rules when etcd loses them (an endpoint lease expired
// during a partition), so a container isolated by policy is never opened.
func (p *Engine) SetLocal(local func() []workload.Attachment) { p.local.Store(&local) }

// LocalChanged tells the engine that the local containers changed (a CNI
// ADD or DEL): it applies the latest view again with them, without waiting
// for etcd to deliver the change.
func (p *Engine) LocalChanged() { p.wake() }

// Offer hands the engine a newer view; only the latest is applied.
func (p *Engine) Offer(v workload.View) {
	p.latest.Store(&v)
	p.wake()
}

func (p *Engine) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run applies offered views until ctx ends, retrying a failed apply, and
// checks the installed tables every checkInterval (0: never).
func (p *Engine) Run(ctx context.Context, checkInterval time.Duration) {
	retry := time.NewTimer(0)
	retry.Stop()
	defer retry.Stop()
	var check <-chan time.Time
	if checkInterval > 0 {
		t := time.NewTicker(checkInterval)
		defer t.Stop()
		check = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-retry.C:
		case <-check:
			if !p.tablesTampered() {
				continue
			}
		}
		v := p.latest.Load()
		if v == nil {
			continue
		}
		if err := p.ApplyView(*v); err != nil {
			retry.Reset(Retry)
		}
	}
}

// ApplyView compiles v for this node and replaces the kernel's rules in
// one transaction. On an error the rules in force stay as they were.
func (p *Engine) ApplyView(v workload.View) error {
	start := time.Now()
	err := p.apply(v)
	p.lastDurationNs.Store(int64(time.Since(start)))
	if err != nil {
		p.failed.Add(1)
		p.log.Error("policy not applied; previous rules stay in force", "revision", v.Revision, "err", err)
		return err
	}
	p.log.Info("policy applied", "revision", v.Revision, "policies", len(v.Policies), "endpoints", len(v.Attachments),
		"isolatedIngress", p.isolatedIn.Load(), "isolatedEgress", p.isolatedOut.Load(), "rejected", p.rejectedN.Load(),
		"took", time.Since(start).Round(time.Microsecond))
	return nil
}

func (p *Engine) apply(v workload.View) error {
	if l := p.local.Load(); l != nil {
		v = WithLocalAttachments(v, (*l)())
	}
	in, rejected := p.parsed.input(v, p.node)
	rs, err := policy.Compile(in)
	if err != nil {
		return err
	}
	for _, r := range rs.Rejected {
		rejected = append(rejected, Rejected{Namespace: r.Namespace, Name: r.Name, Reason: r.Err.Error()})
	}
	// Same-host traffic crosses the bridge without the IPv4 hooks unless
	// the bridge passes it there; the bridge appears with the first
	// container, so check on every apply (cheap, idempotent).
	if err := p.bridge(); err != nil {
		return err
	}
	if err := p.enf.Apply(rs); err != nil {
		return err
	}
	in4, out4 := rs.Pods()
	p.isolatedIn.Store(int64(in4))
	p.isolatedOut.Store(int64(out4))
	p.rejectedN.Store(int64(len(rejected)))
	p.logRejected(rejected)
	local := map[netip.Addr]bool{}
	for _, ep := range in.Endpoints {
		if ep.Node == p.node {
			local[ep.IP] = true
		}
	}
	// Counted before WaitApplied and WaitEnforced wake, so that whoever
	// they wake (weftd's READY=1, a CNI ADD) finds Status and InForce
	// saying so.
	p.applied.Add(1)
	p.lastRevision.Store(v.Revision)
	p.markEnforced(local, rejected)
	return nil
}

// logRejected warns about each rejected policy once (while it stays
// rejected: every apply would repeat it).
func (p *Engine) logRejected(now []Rejected) {
	p.mu.Lock()
	before := p.rejected
	p.mu.Unlock()
	seen := map[Rejected]bool{}
	for _, r := range before {
		seen[r] = true
	}
	for _, r := range now {
		if !seen[r] {
			p.log.Warn("stored policy rejected: its namespace's containers are isolated (fails closed) until it is fixed or deleted",
				"namespace", r.Namespace, "name", r.Name, "reason", r.Reason)
		}
	}
}

// markEnforced records the local endpoints of the rules now in force and
// wakes WaitEnforced.
func (p *Engine) markEnforced(local map[netip.Addr]bool, rejected []Rejected) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.enforced = local
	p.rejected = rejected
	close(p.appliedC)
	p.appliedC = make(chan struct{})
}

// ErrNotEnforced is WaitEnforced's error when ctx ended first.
var ErrNotEnforced = errors.New("the container's policy rules are not in force")

// WaitEnforced returns nil once the rules in force were built with this
// node's endpoint ip (so policies selecting it apply), or an error wrapping
// ErrNotEnforced and ctx's when ctx ends first.
func (p *Engine) WaitEnforced(ctx context.Context, ip netip.Addr) error {
	for {
		p.mu.Lock()
		done, next := p.enforced[ip], p.appliedC
		p.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotEnforced, context.Cause(ctx))
		case <-next:
		}
	}
}

// WaitApplied returns nil once rules from some view are in force, or
// ctx's error when it ends first.
func (p *Engine) WaitApplied(ctx context.Context) error {
	for {
		p.mu.Lock()
		done, next := p.enforced != nil, p.appliedC
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

// InForce tells whether rules from some view are in force (WaitApplied
// would return at once): weftd's readiness.
func (p *Engine) InForce() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.enforced != nil
}

// Status is what /status shows of the engine.
type Status struct {
	// Revision is the etcd revision of the view the rules in force were
	// built from (0: none applied yet).
	Revision int64      `json:"revision"`
	Applied  uint64     `json:"applied"`
	Failed   uint64     `json:"failed"`
	Rejected []Rejected `json:"rejected"`
}

// Status reports the rules in force.
func (p *Engine) Status() Status {
	p.mu.Lock()
	rej := append([]Rejected{}, p.rejected...)
	p.mu.Unlock()
	return Status{Revision: p.lastRevision.Load(), Applied: p.applied.Load(), Failed: p.failed.Load(), Rejected: rej}
}
