package subnet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Backoff bounds for retrying etcd after errors.
const (
	minRetryDelay = 100 * time.Millisecond
	maxRetryDelay = 5 * time.Second
)

// KeepLease keeps lease alive until ctx is cancelled (then it returns nil
// and leaves the lease in etcd, so a restart gets the same subnet back).
//
// It renews the etcd lease RenewMargin before expiry (every TTL/3 when the
// margin is not shorter than the TTL) and watches the lease key, so a lost
// lease (expired, or deleted) is noticed at once and re-taken with the same
// subnet if it is free. If another node holds the subnet, it returns an
// error wrapping ErrLeaseLost. etcd errors are retried with backoff.
// onRenew, if not nil, is called after every renewal or re-take.
func (m *Manager) KeepLease(ctx context.Context, cfg *Config, lease Lease, onRenew func(Lease)) error {
	if cfg == nil {
		return errors.New("keep lease: network config is nil")
	}
	value, err := lease.Attrs.marshal()
	if err != nil {
		return err
	}
	k := &keeper{m: m, cfg: cfg, lease: lease, value: value, key: m.LeaseKey(lease.Subnet), onRenew: onRenew}
	return k.run(ctx)
}

type keeper struct {
	m       *Manager
	cfg     *Config
	lease   Lease
	value   string
	key     string
	onRenew func(Lease)
}

func (k *keeper) run(ctx context.Context) error {
	changed := make(chan struct{}, 1)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go k.watchKey(watchCtx, changed)

	// Check right away: the lease may have been lost before we started.
	next := time.Now()
	delay := minRetryDelay
	for {
		timer := time.NewTimer(time.Until(next))
		renew := false
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-changed:
			timer.Stop()
		case <-timer.C:
			renew = true
		}
		err := k.reconcile(ctx, renew)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrLeaseLost):
			return fmt.Errorf("keep lease %s: %w", k.lease.Subnet, err)
		case err != nil:
			k.logRetry(err, delay)
			next = time.Now().Add(delay)
			delay = min(delay*2, maxRetryDelay)
		default:
			delay = minRetryDelay
			next = k.nextRenewal()
		}
	}
}

func (k *keeper) logRetry(err error, delay time.Duration) {
	if !k.lease.Reservation && !k.lease.Expiration.IsZero() && time.Now().After(k.lease.Expiration) {
		k.m.log.Error("subnet lease may have expired; etcd unreachable, retrying", "subnet", k.lease.Subnet, "err", err, "retry_in", delay)
		return
	}
	k.m.log.Warn("renewing subnet lease failed, retrying", "subnet", k.lease.Subnet, "err", err, "retry_in", delay)
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
	resp, err := k.m.cli.Get(rctx, k.key)
	if err != nil {
		return fmt.Errorf("read %s: %w", k.key, err)
	}
	k.m.touch()
	if len(resp.Kvs) == 0 {
		return k.retake(rctx)
	}
	kv := resp.Kvs[0]
	attrs, err := parseLeaseAttrs(kv.Value)
	if err != nil || attrs.PublicIP != k.lease.Attrs.PublicIP {
		return fmt.Errorf("%w: %s now holds %q", ErrLeaseLost, k.key, kv.Value)
	}
	if kv.Lease == 0 {
		if !k.lease.Reservation {
			k.m.log.Info("subnet lease turned into a reservation", "subnet", k.lease.Subnet)
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
	k.m.log.Debug("renewed subnet lease", "subnet", k.lease.Subnet, "expires", k.lease.Expiration)
	k.notify()
	return nil
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
			holder = string(rr.Kvs[0].Value)
			if a, perr := parseLeaseAttrs(rr.Kvs[0].Value); perr == nil && a.PublicIP == k.lease.Attrs.PublicIP {
				return nil // someone (our earlier attempt) already put it back
			}
		}
		return fmt.Errorf("%w: %s was taken by %s", ErrLeaseLost, k.key, holder)
	}
	k.lease.Reservation = false
	k.lease.Expiration = start.Add(time.Duration(grant.TTL) * time.Second)
	k.m.log.Warn("subnet lease was lost and has been re-taken", "subnet", k.lease.Subnet, "expires", k.lease.Expiration)
	k.notify()
	return nil
}

func (k *keeper) notify() {
	if k.onRenew != nil {
		k.onRenew(k.lease)
	}
}

// watchKey signals changed whenever the lease key changes, so a deletion
// is handled without waiting for the next renewal.
func (k *keeper) watchKey(ctx context.Context, changed chan<- struct{}) {
	delay := minRetryDelay
	for ctx.Err() == nil {
		wch := k.m.cli.Watch(clientv3.WithRequireLeader(ctx), k.key)
		for resp := range wch {
			if resp.Err() != nil {
				break
			}
			delay = minRetryDelay
			if len(resp.Events) > 0 {
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		}
		// The watch ended (etcd trouble): check the key once it is back.
		select {
		case changed <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, maxRetryDelay)
	}
}
