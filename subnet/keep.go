package subnet

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/subnet/etcdread"
)

// Backoff bounds for retrying etcd after errors.
const (
	minRetryDelay = etcdread.MinRetryDelay
	maxRetryDelay = etcdread.MaxRetryDelay
)

// KeepLease keeps lease alive until ctx is cancelled (then it returns nil
// and leaves the lease in etcd, so a restart gets the same subnet back).
//
// It renews the etcd lease RenewMargin before expiry (every TTL/3 when the
// margin is not shorter than the TTL) and watches the lease key from the
// revision it last read, so a lost lease (expired, or deleted) is noticed
// at once and re-taken with the same subnet if it is free. A key that holds
// another value with this node's PublicIP, or a value that is no usable
// lease, is put back to this node's value (in a Txn on the revision read,
// at most once per restoreQuiet while someone keeps changing it). If
// another node (another PublicIP) holds the subnet, it returns an error
// wrapping ErrLeaseLost. etcd errors are retried with backoff. onRenew, if
// not nil, is called after every renewal, re-take or restore.
func (m *Manager) KeepLease(ctx context.Context, cfg *Config, lease Lease, onRenew func(Lease)) error {
	return m.keepLease(ctx, cfg, lease, onRenew, nil, keepHooks{})
}

// KeepLeaseUpdating is KeepLease for a node whose attributes change while
// it runs (the wireguard backend's rotated key): each value received on
// updates becomes this node's value, written to the key at once (on the
// same subnet and etcd lease) and kept from then on like the first. An
// update with another PublicIP is refused (logged): it would be another node.
func (m *Manager) KeepLeaseUpdating(ctx context.Context, cfg *Config, lease Lease, onRenew func(Lease), updates <-chan LeaseAttrs) error {
	return m.keepLease(ctx, cfg, lease, onRenew, updates, keepHooks{})
}

// keepHooks let tests act at the points where races live; nil in
// production.
type keepHooks struct {
	afterRead   func() // after each read of the key
	beforeWatch func() // before each watch of the key is opened
}

func (m *Manager) keepLease(ctx context.Context, cfg *Config, lease Lease, onRenew func(Lease), updates <-chan LeaseAttrs, hooks keepHooks) error {
	if cfg == nil {
		return errors.New("keep lease: network config is nil")
	}
	value, err := lease.Attrs.marshal()
	if err != nil {
		return err
	}
	k := &keeper{m: m, cfg: cfg, lease: lease, value: value, key: m.LeaseKeyOf(lease), onRenew: onRenew, hooks: hooks, updates: updates}
	return k.run(ctx)
}

// restoreQuiet: after this long without restoring the key, the backoff
// between restores starts again at minRetryDelay.
const restoreQuiet = 10 * time.Second

type keeper struct {
	m       *Manager
	cfg     *Config
	lease   Lease
	value   string
	key     string
	onRenew func(Lease)
	hooks   keepHooks
	updates <-chan LeaseAttrs // new values for this node's key (nil: none)

	// readRev is the revision of the last read of the key (written by
	// run, read by watchKey); the watch starts after the first one, and
	// resumes after the last one if that is later than its last event.
	readRev atomic.Int64
	// leaseID is the etcd lease the key was last seen on with our value.
	leaseID clientv3.LeaseID
	// restored is set by a restore, for run to hold off the next one.
	restored     bool
	lastRestore  time.Time
	restoreDelay time.Duration
}

func (k *keeper) run(ctx context.Context) error {
	changed := make(chan struct{}, 1)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watching := false

	// Check right away: the lease may have been lost before we started.
	next := time.Now()
	delay := minRetryDelay
	var holdoff time.Time // no reconcile on a change before this
	for {
		timer := time.NewTimer(time.Until(next))
		renew := false
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-changed:
			timer.Stop()
			if time.Now().Before(holdoff) {
				next = holdoff
				continue
			}
		case a := <-k.updates:
			timer.Stop()
			if err := k.update(a); err != nil {
				k.m.log.Error("not publishing new lease attributes", "subnet", k.lease.String(), "err", err)
				continue
			}
			holdoff = time.Time{} // our own change: reconcile now
		case <-timer.C:
			renew = true
		}
		err := k.reconcile(ctx, renew)
		if !watching && k.readRev.Load() != 0 {
			// Watch from just after the read reconciled from, so that a
			// change in between is seen, however late the watch opens.
			watching = true
			go k.watchKey(watchCtx, k.readRev.Load()+1, changed)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrLeaseLost):
			return fmt.Errorf("keep lease %s: %w", k.lease, err)
		case err != nil:
			k.logRetry(err, delay)
			next = time.Now().Add(delay)
			holdoff = next
			delay = min(delay*2, maxRetryDelay)
		default:
			delay = minRetryDelay
			next = k.nextRenewal()
			if k.restored {
				k.restored = false
				holdoff = time.Now().Add(k.restoreDelay)
			}
		}
	}
}

// update makes a the value kept from now on; the next reconcile writes it
// (the stored value is then another endpoint: restore puts ours).
func (k *keeper) update(a LeaseAttrs) error {
	if !a.sameNode(k.lease.Attrs) {
		return fmt.Errorf("PublicIP %s is not this node's %s", a.node(), k.lease.Attrs.node())
	}
	if err := a.validate(); err != nil {
		return err
	}
	value, err := a.marshal()
	if err != nil {
		return err
	}
	k.lease.Attrs, k.value = a, value
	k.m.log.Info("publishing new lease attributes", "subnet", k.lease.String(), "backend", a.BackendType)
	return nil
}

func (k *keeper) logRetry(err error, delay time.Duration) {
	if !k.lease.Reservation && !k.lease.Expiration.IsZero() && time.Now().After(k.lease.Expiration) {
		k.m.log.Error("subnet lease may have expired; etcd unreachable, retrying", "subnet", k.lease.String(), "err", err, "retry_in", delay)
		return
	}
	k.m.log.Warn("renewing subnet lease failed, retrying", "subnet", k.lease.String(), "err", err, "retry_in", delay)
}

// nextRenewal is when the lease should be renewed next.
func (k *keeper) nextRenewal() time.Time {
	if k.lease.Reservation || k.lease.Expiration.IsZero() {
		// Nothing expires; look again now and then in case the watch missed something.
		return time.Now().Add(time.Minute)
	}
	ttl := k.m.ttl
	return k.lease.Expiration.Add(-ttl).Add(k.m.renewInterval(ttl))
}

// reconcile reads the key and acts: renew it (when renew is set and it is
// ours), re-take it (when gone), or report it lost.
func (k *keeper) reconcile(ctx context.Context, renew bool) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := k.m.getKey(rctx, k.key)
	if err != nil {
		return fmt.Errorf("read %s: %w", k.key, err)
	}
	k.readRev.Store(resp.Header.Revision)
	if k.hooks.afterRead != nil {
		k.hooks.afterRead()
	}
	if len(resp.Kvs) == 0 {
		return k.retake(rctx)
	}
	kv := resp.Kvs[0]
	if attrs, perr := parseLeaseAttrs(kv.Value); perr != nil || !attrs.sameEndpoint(k.lease.Attrs) {
		if perr == nil && !attrs.sameHost(k.lease.Attrs) {
			return fmt.Errorf("%w: %s now holds %s", ErrLeaseLost, k.key, quoteValue(kv.Value))
		}
		// Our PublicIP with another port or backend, or junk: no other
		// node claims the subnet, and peers cannot reach us with it.
		restoredKV, err := k.restore(rctx, kv)
		if err != nil {
			return err
		}
		kv = restoredKV
		renew = true
	}
	if kv.Lease != 0 {
		k.leaseID = clientv3.LeaseID(kv.Lease)
	}
	if kv.Lease == 0 {
		if !k.lease.Reservation {
			k.m.log.Info("subnet lease turned into a reservation", "subnet", k.lease.String())
			k.lease.Reservation, k.lease.Expiration = true, time.Time{}
			k.notify()
		}
		return nil
	}
	if k.lease.Reservation {
		k.lease.Reservation = false
		renew = true
	}
	if !renew {
		return nil
	}
	start := time.Now()
	ka, err := k.m.cli.KeepAliveOnce(rctx, clientv3.LeaseID(kv.Lease))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		// Expired between the read and the renewal; the key goes with it.
		return k.retake(rctx)
	}
	if err != nil {
		return fmt.Errorf("renew etcd lease of %s: %w", k.key, err)
	}
	k.m.touch()
	k.lease.Expiration = start.Add(time.Duration(ka.TTL) * time.Second)
	k.m.log.Debug("renewed subnet lease", "subnet", k.lease.String(), "expires", k.lease.Expiration)
	k.notify()
	return nil
}

// restore puts our value back on a key that holds another one, if the key
// is unchanged since kv was read. It keeps the key's etcd lease; when the
// other value was written without one, it puts ours back on the etcd lease
// the key had (a fresh one if that is gone), unless the key was a
// reservation. It returns the key as now stored.
func (k *keeper) restore(ctx context.Context, kv *mvccpb.KeyValue) (*mvccpb.KeyValue, error) {
	// Ours, not the writer's: a reservation stays without a TTL, a lease
	// goes back on the etcd lease this node renews (a fresh one if there is
	// none or it is gone), so the writer does not choose our key's life.
	var leaseID clientv3.LeaseID
	if !k.lease.Reservation {
		leaseID = k.leaseID
		if leaseID == 0 {
			leaseID = clientv3.LeaseID(kv.Lease)
		}
		if leaseID == 0 {
			leaseID = clientv3.LeaseID(-1) // no etcd lease: granted below
		}
	}
	put := func(id clientv3.LeaseID) (*clientv3.TxnResponse, error) {
		var opts []clientv3.OpOption
		if id != 0 {
			opts = append(opts, clientv3.WithLease(id))
		}
		return k.m.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(k.key), "=", kv.ModRevision)).
			Then(clientv3.OpPut(k.key, k.value, opts...)).
			Commit()
	}
	var resp *clientv3.TxnResponse
	var err error
	if leaseID != -1 {
		resp, err = put(leaseID)
	}
	if leaseID == -1 || errors.Is(err, rpctypes.ErrLeaseNotFound) && leaseID != 0 {
		grant, gerr := k.m.cli.Grant(ctx, k.m.ttlSeconds())
		if gerr != nil {
			return nil, fmt.Errorf("grant etcd lease: %w", gerr)
		}
		leaseID = grant.ID
		resp, err = put(leaseID)
		if err != nil || !resp.Succeeded {
			if _, rerr := k.m.cli.Revoke(ctx, grant.ID); rerr != nil {
				k.m.log.Debug("revoke unused etcd lease", "err", rerr)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", k.key, err)
	}
	k.m.touch()
	if !resp.Succeeded {
		return nil, fmt.Errorf("restore %s: the key changed again; reading it anew", k.key)
	}
	now := time.Now()
	if now.Sub(k.lastRestore) > restoreQuiet {
		k.restoreDelay = minRetryDelay
	} else {
		k.restoreDelay = min(k.restoreDelay*2, maxRetryDelay)
	}
	k.lastRestore, k.restored = now, true
	k.m.log.Warn("this node's lease key held another value; put ours back", "subnet", k.lease.String(), "found", quoteValue(kv.Value), "ours", k.value)
	return &mvccpb.KeyValue{Key: kv.Key, Value: []byte(k.value), Lease: int64(leaseID), ModRevision: resp.Header.Revision}, nil
}

// retake puts the key back if it is still free.
func (k *keeper) retake(ctx context.Context) error {
	start := time.Now()
	grant, err := k.m.cli.Grant(ctx, k.m.ttlSeconds())
	if err != nil {
		return fmt.Errorf("grant etcd lease: %w", err)
	}
	k.m.touch()
	resp, err := k.m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k.key), "=", 0)).
		Then(clientv3.OpPut(k.key, k.value, clientv3.WithLease(grant.ID))).
		Else(clientv3.OpGet(k.key)).
		Commit()
	if err != nil || !resp.Succeeded {
		if _, rerr := k.m.cli.Revoke(ctx, grant.ID); rerr != nil {
			k.m.log.Debug("revoke unused etcd lease", "err", rerr)
		}
	}
	if err != nil {
		return fmt.Errorf("re-take %s: %w", k.key, err)
	}
	if !resp.Succeeded {
		holder := ""
		if rr := resp.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
			holder = quoteValue(rr.Kvs[0].Value)
			a, perr := parseLeaseAttrs(rr.Kvs[0].Value)
			if perr == nil && a.sameEndpoint(k.lease.Attrs) {
				return nil // someone (our earlier attempt) already put it back
			}
			if perr != nil || a.sameHost(k.lease.Attrs) {
				// Not another node's claim: read it again and restore ours.
				return fmt.Errorf("re-take %s: it reappeared holding %s", k.key, holder)
			}
		}
		return fmt.Errorf("%w: %s was taken by %s", ErrLeaseLost, k.key, holder)
	}
	k.lease.Reservation = false
	k.leaseID = grant.ID
	k.lease.Expiration = start.Add(time.Duration(grant.TTL) * time.Second)
	k.m.log.Warn("subnet lease was lost and has been re-taken", "subnet", k.lease.String(), "expires", k.lease.Expiration)
	k.notify()
	return nil
}

func (k *keeper) notify() {
	if k.onRenew != nil {
		k.onRenew(k.lease)
	}
}

// watchKey signals changed whenever the lease key changes at or after
// revision rev, so a deletion is handled without waiting for the next
// renewal. After a broken watch it resumes after the last event seen.
func (k *keeper) watchKey(ctx context.Context, rev int64, changed chan<- struct{}) {
	delay := minRetryDelay
	for ctx.Err() == nil {
		if k.hooks.beforeWatch != nil {
			k.hooks.beforeWatch()
		}
		wch := k.m.cli.Watch(clientv3.WithRequireLeader(ctx), k.key, clientv3.WithRev(rev))
		for resp := range wch {
			if resp.CompactRevision != 0 {
				// Events were compacted away; the reconcile this triggers
				// reads the key anew.
				rev = resp.CompactRevision
			}
			if resp.Err() != nil {
				break
			}
			delay = minRetryDelay
			if n := len(resp.Events); n > 0 {
				rev = resp.Events[n-1].Kv.ModRevision + 1
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		}
		// The watch ended (etcd trouble, or an event too large to receive):
		// check the key once it is back, and resume after that read if it
		// is later (the read reflects every event up to it).
		select {
		case changed <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		rev = max(rev, k.readRev.Load()+1)
		delay = min(delay*2, maxRetryDelay)
	}
}
