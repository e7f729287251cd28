package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultLivenessTTL is the TTL of a node's liveness lease, which carries
// its attachments: this long after a node stops renewing it (crash, power
// off, partition) its attachments disappear from every view.
const DefaultLivenessTTL = 30 * time.Second

// maxTxnOps is etcd's default limit on operations in one transaction.
const maxTxnOps = 128

// Publisher publishes this node's containers under
// <prefix>/endpoints/<ip>, all attached to one etcd lease of its own (the
// node's liveness lease, with a short TTL, kept alive by Run). The subnet
// lease is not used: its TTL is a day by default and reservations have
// none, so a dead node's attachments would linger.
//
// It remembers what it published: when the liveness lease is lost (etcd
// unreachable for longer than the TTL) Run takes a new one and publishes
// everything again. On exit the lease is left to expire, not revoked, so
// a restarting weftd does not make its containers vanish from other
// nodes' rules.
type Publisher struct {
	s    *Store
	node string
	ttl  time.Duration

	mu    sync.Mutex // held across etcd writes: publications happen in order
	want  map[netip.Addr]Attachment
	lease clientv3.LeaseID // 0 when none is held
	// unwithdrawn are attachments whose Withdraw failed (etcd unreachable);
	// Run deletes them once etcd answers, unless the IP was published again.
	unwithdrawn map[netip.Addr]bool
}

// NewPublisher returns a publisher for node (its public IP, as in
// its subnet lease) with a liveness lease of ttl (DefaultLivenessTTL when
// zero; at least 2 s).
func (s *Store) NewPublisher(node string, ttl time.Duration) *Publisher {
	if ttl <= 0 {
		ttl = DefaultLivenessTTL
	}
	ttl = max(ttl, 2*time.Second)
	return &Publisher{s: s, node: node, ttl: ttl, want: map[netip.Addr]Attachment{}, unwithdrawn: map[netip.Addr]bool{}}
}

// Node is the node name written into every attachment.
func (p *Publisher) Node() string { return p.node }

// Attachments returns what this node publishes, sorted by IP.
func (p *Publisher) Attachments() []Attachment {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := slices.Collect(maps.Values(p.want))
	sortAttachments(out)
	return out
}

// Start makes this node's published attachments exactly eps (what its
// containers are after a restart): it takes a liveness lease, puts every
// attachment on it and deletes attachments that name this node but are not in
// eps. Call it once, before Run and Publish.
func (p *Publisher) Start(ctx context.Context, eps []Attachment) error {
	want := make(map[netip.Addr]Attachment, len(eps))
	for _, ep := range eps {
		ep.Node = p.node
		if err := ep.Validate(); err != nil {
			return fmt.Errorf("publish endpoints: %w", err)
		}
		want[ep.IP] = ep
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.want = want
	if err := p.grantAndPublishAll(ctx); err != nil {
		return err
	}
	return p.deleteStale(ctx)
}

// Publish puts one attachment (Node is set to this node), replacing what was
// published for its IP. It returns once etcd has it.
func (p *Publisher) Publish(ctx context.Context, ep Attachment) error {
	ep.Node = p.node
	if err := ep.Validate(); err != nil {
		return fmt.Errorf("publish endpoint: %w", err)
	}
	data, err := json.Marshal(ep)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lease == 0 {
		if err := p.grantAndPublishAll(ctx); err != nil {
			return fmt.Errorf("publish endpoint %s: %w", ep.IP, err)
		}
	}
	if _, err := p.s.cli.Put(ctx, p.s.attachmentKey(ep.IP), string(data), clientv3.WithLease(p.lease)); err != nil {
		return fmt.Errorf("publish endpoint %s: %w", ep.IP, err)
	}
	p.s.touch()
	p.want[ep.IP] = ep
	delete(p.unwithdrawn, ep.IP)
	return nil
}

// Withdraw deletes the attachment of ip if this node published it (an
// attachment of another node with the same IP is left alone). found tells
// whether there was one to delete. When etcd cannot be reached the
// attachment is forgotten all the same and Run deletes it later.
func (p *Publisher) Withdraw(ctx context.Context, ip netip.Addr) (found bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, known := p.want[ip]
	delete(p.want, ip)
	found, err = p.withdraw(ctx, ip)
	if err != nil {
		p.unwithdrawn[ip] = true
		return false, fmt.Errorf("withdraw endpoint %s (deleted later, when etcd answers): %w", ip, err)
	}
	delete(p.unwithdrawn, ip)
	return found || known, nil
}

// withdraw deletes ip's key if it names this node. Call with p.mu held.
func (p *Publisher) withdraw(ctx context.Context, ip netip.Addr) (bool, error) {
	key := p.s.attachmentKey(ip)
	resp, err := p.s.cli.Get(ctx, key)
	if err != nil {
		return false, err
	}
	p.s.touch()
	if len(resp.Kvs) == 0 {
		return false, nil
	}
	kv := resp.Kvs[0]
	if ep, err := decodeAttachment(kv.Value); err == nil && ep.Node != p.node {
		return false, nil
	}
	txn, err := p.s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return false, err
	}
	return txn.Succeeded, nil
}

// retryWithdrawals deletes attachments whose Withdraw failed.
func (p *Publisher) retryWithdrawals(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ip := range p.unwithdrawn {
		if _, ok := p.want[ip]; ok {
			delete(p.unwithdrawn, ip)
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := p.withdraw(wctx, ip)
		cancel()
		if err != nil {
			return // etcd still away; next time
		}
		delete(p.unwithdrawn, ip)
		p.s.log.Info("withdrew endpoint after etcd came back", "ip", ip)
	}
}

// Run keeps the liveness lease alive until ctx ends and returns nil then.
// When the lease is lost it takes a new one and publishes every attachment
// again, retrying with backoff while etcd is unreachable.
func (p *Publisher) Run(ctx context.Context) error {
	delay := minRetryDelay
	for ctx.Err() == nil {
		p.mu.Lock()
		lease := p.lease
		var err error
		if lease == 0 {
			err = p.grantAndPublishAll(ctx)
			lease = p.lease
		}
		p.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			p.s.log.Warn("publishing endpoints failed, retrying", "err", err, "retry_in", delay)
			select {
			case <-ctx.Done():
			case <-time.After(delay):
			}
			delay = min(delay*2, maxRetryDelay)
			continue
		}
		delay = minRetryDelay
		p.keepAlive(ctx, lease)
		if ctx.Err() != nil {
			break
		}
		p.mu.Lock()
		if p.lease == lease {
			p.lease = 0
		}
		p.mu.Unlock()
		p.s.log.Warn("endpoint liveness lease lost; taking a new one and publishing again", "lease", lease)
	}
	return nil
}

// keepAlive renews lease until it is lost or ctx ends.
func (p *Publisher) keepAlive(ctx context.Context, lease clientv3.LeaseID) {
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := p.s.cli.KeepAlive(kctx, lease)
	if err != nil {
		p.s.log.Warn("keep endpoint lease alive", "lease", lease, "err", err)
		return
	}
	retry := time.NewTicker(retryWithdrawEvery)
	defer retry.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
			p.s.touch()
		case <-retry.C:
			p.retryWithdrawals(ctx)
		}
	}
}

// retryWithdrawEvery is how often Run retries failed withdrawals.
const retryWithdrawEvery = 2 * time.Second

// livenessKey names node's liveness lease: a key attached to it, so that
// a restarted weftd (even one killed with SIGKILL) finds the lease its
// previous run left and takes it over instead of granting another one
// (every start used to leave an orphan lease behind, kept for its TTL and
// renewed by every restart of an embedded etcd).
func (s *Store) livenessKey(node string) string { return s.prefix + "/liveness/" + node }

// grantAndPublishAll takes a lease (the one the node's liveness key holds,
// if it is alive and of the right TTL; else a new one) and puts the
// liveness key and every wanted attachment on it. Call with p.mu held.
func (p *Publisher) grantAndPublishAll(ctx context.Context) error {
	ttl := int64((p.ttl + time.Second - 1) / time.Second)
	lease, fresh, err := p.takeLease(ctx, ttl)
	if err != nil {
		return err
	}
	eps := slices.Collect(maps.Values(p.want))
	sortAttachments(eps)
	ops := []clientv3.Op{clientv3.OpPut(p.s.livenessKey(p.node), "endpoint liveness lease of node "+p.node, clientv3.WithLease(lease))}
	for _, ep := range eps {
		data, err := json.Marshal(ep)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(p.s.attachmentKey(ep.IP), string(data), clientv3.WithLease(lease)))
	}
	for batch := range slices.Chunk(ops, maxTxnOps) {
		if _, err := p.s.cli.Txn(ctx).Then(batch...).Commit(); err != nil {
			if fresh {
				if _, rerr := p.s.cli.Revoke(context.WithoutCancel(ctx), lease); rerr != nil {
					p.s.log.Debug("revoke unused endpoint lease", "err", rerr)
				}
			}
			return fmt.Errorf("publish %d endpoints: %w", len(eps), err)
		}
	}
	p.lease = lease
	return nil
}

// takeLease returns the lease of the node's liveness key when it is alive
// and was granted with ttl seconds (renewed at once), else a new lease
// (fresh), revoking an old one of another TTL.
func (p *Publisher) takeLease(ctx context.Context, ttl int64) (id clientv3.LeaseID, fresh bool, err error) {
	resp, err := p.s.cli.Get(ctx, p.s.livenessKey(p.node))
	if err != nil {
		return 0, false, fmt.Errorf("read endpoint liveness key: %w", err)
	}
	p.s.touch()
	if len(resp.Kvs) == 1 && resp.Kvs[0].Lease != 0 {
		old := clientv3.LeaseID(resp.Kvs[0].Lease)
		ka, err := p.s.cli.KeepAliveOnce(ctx, old)
		switch {
		case err == nil && ka.TTL > 0 && ka.TTL <= ttl && ka.TTL >= ttl-1:
			p.s.log.Debug("took over the endpoint liveness lease of an earlier run", "lease", old)
			return old, false, nil
		case err == nil:
			// Another --endpoint-ttl: a new lease, and the old one goes.
			defer func() {
				if err == nil {
					if _, rerr := p.s.cli.Revoke(ctx, old); rerr != nil {
						p.s.log.Debug("revoke the endpoint lease of an earlier run", "lease", old, "err", rerr)
					}
				}
			}()
		}
	}
	grant, err := p.s.cli.Grant(ctx, ttl)
	if err != nil {
		return 0, false, fmt.Errorf("grant endpoint liveness lease: %w", err)
	}
	p.s.touch()
	return grant.ID, true, nil
}

// deleteStale deletes attachments naming this node that it does not want.
// Call with p.mu held.
func (p *Publisher) deleteStale(ctx context.Context) error {
	resp, err := p.s.cli.Get(ctx, p.s.attachmentsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("list endpoints: %w", err)
	}
	var ops []clientv3.Op
	var stale []string
	for _, kv := range resp.Kvs {
		ep, err := decodeAttachment(kv.Value)
		if err != nil || ep.Node != p.node {
			continue
		}
		if _, ok := p.want[ep.IP]; ok && p.s.attachmentKey(ep.IP) == string(kv.Key) {
			continue
		}
		ops = append(ops, clientv3.OpDelete(string(kv.Key)))
		stale = append(stale, string(kv.Key))
	}
	for batch := range slices.Chunk(ops, maxTxnOps) {
		if _, err := p.s.cli.Txn(ctx).Then(batch...).Commit(); err != nil {
			return fmt.Errorf("delete stale endpoints of node %s: %w", p.node, err)
		}
	}
	if len(stale) > 0 {
		p.s.log.Info("deleted stale endpoints of this node", "endpoints", stale)
	}
	return nil
}
