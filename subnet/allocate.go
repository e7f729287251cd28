package subnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxAllocAttempts bounds the retries on Txn conflicts.
const maxAllocAttempts = 64

// AcquireLease gets this node a subnet, in order of preference:
//  1. the lease (or reservation) that attrs.PublicIP already holds, with its
//     TTL refreshed on a new etcd lease (reservations stay without TTL);
//  2. previous (e.g. from the last subnet file), if it is free and in range;
//  3. a random free subnet in [SubnetMin, SubnetMax];
//  4. when none is free, a subnet whose key holds no usable lease and has
//     no TTL (junk that would otherwise occupy it for good); it is replaced
//     only if unchanged since it was read. Unusable keys with a TTL are
//     left to expire.
//
// Every write is a Txn guarded by the key's revision, so racing nodes
// never share a subnet; conflicts are retried. A full pool gives
// ErrPoolExhausted and leaves nothing behind.
func (m *Manager) AcquireLease(ctx context.Context, cfg *Config, attrs LeaseAttrs, previous netip.Prefix) (Lease, error) {
	if cfg == nil {
		return Lease{}, errors.New("acquire lease: network config is nil")
	}
	if err := attrs.validate(); err != nil {
		return Lease{}, fmt.Errorf("acquire lease: %w", err)
	}
	value, err := attrs.marshal()
	if err != nil {
		return Lease{}, err
	}
	a := &allocation{m: m, cfg: cfg, attrs: attrs, value: value, previous: previous}
	defer a.releaseUnusedGrant()
	for attempt := 0; attempt < maxAllocAttempts; attempt++ {
		lease, done, err := a.try(ctx)
		if err != nil {
			return Lease{}, fmt.Errorf("acquire lease: %w", err)
		}
		if done {
			return lease, nil
		}
		// Lost a race; back off a little, with jitter, and look again.
		select {
		case <-ctx.Done():
			return Lease{}, fmt.Errorf("acquire lease: %w", ctx.Err())
		case <-time.After(time.Duration(rand.Int64N(int64(20*time.Millisecond)) + int64(attempt)*int64(time.Millisecond))):
		}
	}
	return Lease{}, fmt.Errorf("acquire lease: gave up after %d conflicting attempts", maxAllocAttempts)
}

// allocation is one AcquireLease call's state.
type allocation struct {
	m        *Manager
	cfg      *Config
	attrs    LeaseAttrs
	value    string
	previous netip.Prefix

	grant        clientv3.LeaseID // granted etcd lease not yet attached to a key
	grantTTL     time.Duration
	grantGranted time.Time
}

// try makes one attempt; done=false means a Txn lost a race.
func (a *allocation) try(ctx context.Context) (Lease, bool, error) {
	l, err := a.m.listStored(ctx, a.cfg, nil)
	if err != nil {
		return Lease{}, false, err
	}
	if own, ok := a.findOwn(l.leases); ok {
		return a.reuse(ctx, own)
	}
	if subnet, ok := a.pickFree(l.taken); ok {
		return a.create(ctx, subnet)
	}
	if junk, ok := a.pickJunk(l.junk); ok {
		return a.reclaim(ctx, junk)
	}
	return Lease{}, false, fmt.Errorf("%w: all %d subnets of %s in [%s, %s] are taken",
		ErrPoolExhausted, a.cfg.subnetCount(), a.cfg.Network, a.cfg.SubnetMin, a.cfg.SubnetMax)
}

// pickJunk chooses a random reclaimable key in range.
func (a *allocation) pickJunk(junk []storedLease) (storedLease, bool) {
	var in []storedLease
	for _, j := range junk {
		if a.cfg.Contains(j.Subnet) {
			in = append(in, j)
		}
	}
	if len(in) == 0 {
		return storedLease{}, false
	}
	return in[rand.IntN(len(in))], true
}

// reclaim replaces a key that holds no usable lease and has no TTL, if it
// has not changed since it was read.
func (a *allocation) reclaim(ctx context.Context, junk storedLease) (Lease, bool, error) {
	if err := a.ensureGrant(ctx); err != nil {
		return Lease{}, false, err
	}
	key := a.m.LeaseKey(junk.Subnet)
	resp, err := a.m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", junk.modRevision), clientv3.Compare(clientv3.LeaseValue(key), "=", 0)).
		Then(clientv3.OpPut(key, a.value, clientv3.WithLease(a.grant))).
		Commit()
	if err != nil {
		return Lease{}, false, fmt.Errorf("reclaim subnet %s: %w", junk.Subnet, err)
	}
	a.m.touch()
	if !resp.Succeeded {
		return Lease{}, false, nil
	}
	a.m.log.Warn("pool full: took a subnet whose key held no usable lease and no TTL", "subnet", junk.Subnet, "old_value", junk.junkValue)
	return a.granted(junk.Subnet), true, nil
}

// findOwn returns the lease our PublicIP holds in range, preferring a
// reservation, then the previous subnet.
func (a *allocation) findOwn(stored []storedLease) (storedLease, bool) {
	var best storedLease
	found := false
	for _, sl := range stored {
		if sl.Attrs.PublicIP != a.attrs.PublicIP || !a.cfg.Contains(sl.Subnet) {
			continue
		}
		switch {
		case !found:
			best, found = sl, true
		case sl.Reservation && !best.Reservation:
			best = sl
		case sl.Reservation == best.Reservation && sl.Subnet == a.previous:
			best = sl
		}
	}
	return best, found
}

// pickFree chooses previous if free, else a random free subnet.
func (a *allocation) pickFree(taken map[netip.Prefix]bool) (netip.Prefix, bool) {
	if a.previous.IsValid() && a.cfg.Contains(a.previous) && !taken[a.previous] {
		return a.previous, true
	}
	n := a.cfg.subnetCount()
	// A few random probes find a free subnet quickly unless the pool is
	// nearly full; then scan from a random start.
	for range 16 {
		s := a.cfg.subnetAt(rand.Uint32N(n))
		if !taken[s] {
			return s, true
		}
	}
	start := rand.Uint32N(n)
	for i := range n {
		s := a.cfg.subnetAt((start + i) % n)
		if !taken[s] {
			return s, true
		}
	}
	return netip.Prefix{}, false
}

// reuse refreshes the lease we already hold.
func (a *allocation) reuse(ctx context.Context, own storedLease) (Lease, bool, error) {
	key := a.m.LeaseKey(own.Subnet)
	if own.Reservation {
		if !own.Attrs.equal(a.attrs) {
			// Our own reservation: update the backend data, keep it lease-free.
			resp, err := a.m.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(key), "=", own.modRevision)).
				Then(clientv3.OpPut(key, a.value)).
				Commit()
			if err != nil {
				return Lease{}, false, fmt.Errorf("update reservation %s: %w", own.Subnet, err)
			}
			a.m.touch()
			if !resp.Succeeded {
				return Lease{}, false, nil
			}
		}
		a.m.log.Info("using reserved subnet", "subnet", own.Subnet)
		return Lease{Subnet: own.Subnet, Attrs: a.attrs, Reservation: true}, true, nil
	}
	// The key's own etcd lease, renewed, when it is alive and of the
	// configured TTL: a restart grants nothing, so a start killed at any
	// point leaves no etcd lease without a key behind.
	if l, renewed, raced, err := a.renewOwn(ctx, own); renewed || raced || err != nil {
		return l, renewed, err
	}
	if err := a.ensureGrant(ctx); err != nil {
		return Lease{}, false, err
	}
	resp, err := a.m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", own.modRevision)).
		Then(clientv3.OpPut(key, a.value, clientv3.WithLease(a.grant))).
		Commit()
	if err != nil {
		return Lease{}, false, fmt.Errorf("refresh lease %s: %w", own.Subnet, err)
	}
	a.m.touch()
	if !resp.Succeeded {
		return Lease{}, false, nil
	}
	// The old etcd lease now holds no key; drop it rather than wait.
	if own.leaseID != a.grant {
		if _, err := a.m.cli.Revoke(ctx, own.leaseID); err != nil {
			a.m.log.Debug("revoke old etcd lease", "lease", own.leaseID, "err", err)
		}
	}
	a.m.log.Info("reusing subnet lease", "subnet", own.Subnet)
	return a.granted(own.Subnet), true, nil
}

// renewOwn renews the etcd lease own's key is on and puts this node's
// value on the key (same lease) if the key is unchanged since it was read.
// Neither renewed nor raced (the key changed since it was read: look
// again) nor an error means: grant a new lease instead (the old one is
// gone, or has another TTL than configured).
func (a *allocation) renewOwn(ctx context.Context, own storedLease) (l Lease, renewed, raced bool, err error) {
	if own.leaseID == 0 {
		return Lease{}, false, false, nil
	}
	start := time.Now()
	ka, err := a.m.cli.KeepAliveOnce(ctx, own.leaseID)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return Lease{}, false, false, nil
	}
	if err != nil {
		return Lease{}, false, false, fmt.Errorf("renew etcd lease of %s: %w", own.Subnet, err)
	}
	a.m.touch()
	if want := a.m.ttlSeconds(); ka.TTL < want-1 || ka.TTL > want {
		return Lease{}, false, false, nil // --subnet-lease-ttl changed: a new lease, the old one revoked
	}
	key := a.m.LeaseKey(own.Subnet)
	resp, err := a.m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", own.modRevision)).
		Then(clientv3.OpPut(key, a.value, clientv3.WithLease(own.leaseID))).
		Commit()
	if err != nil {
		return Lease{}, false, false, fmt.Errorf("refresh lease %s: %w", own.Subnet, err)
	}
	a.m.touch()
	if !resp.Succeeded {
		return Lease{}, false, true, nil
	}
	a.m.log.Info("reusing subnet lease", "subnet", own.Subnet, "etcdLease", fmt.Sprintf("%x", int64(own.leaseID)))
	return Lease{Subnet: own.Subnet, Attrs: a.attrs, Expiration: start.Add(time.Duration(ka.TTL) * time.Second)}, true, false, nil
}

// create takes a free subnet if it is still free.
func (a *allocation) create(ctx context.Context, subnet netip.Prefix) (Lease, bool, error) {
	if err := a.ensureGrant(ctx); err != nil {
		return Lease{}, false, err
	}
	key := a.m.LeaseKey(subnet)
	resp, err := a.m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, a.value, clientv3.WithLease(a.grant))).
		Commit()
	if err != nil {
		return Lease{}, false, fmt.Errorf("take subnet %s: %w", subnet, err)
	}
	a.m.touch()
	if !resp.Succeeded {
		return Lease{}, false, nil
	}
	a.m.log.Info("took subnet lease", "subnet", subnet, "previous", a.previous)
	return a.granted(subnet), true, nil
}

// granted builds the Lease for subnet on the current grant, which is
// thereby used.
func (a *allocation) granted(subnet netip.Prefix) Lease {
	l := Lease{Subnet: subnet, Attrs: a.attrs, Expiration: a.grantGranted.Add(a.grantTTL)}
	a.grant = 0
	return l
}

func (a *allocation) ensureGrant(ctx context.Context) error {
	if a.grant != 0 {
		return nil
	}
	start := time.Now()
	resp, err := a.m.cli.Grant(ctx, a.m.ttlSeconds())
	if err != nil {
		return fmt.Errorf("grant etcd lease: %w", err)
	}
	a.m.touch()
	a.grant, a.grantGranted, a.grantTTL = resp.ID, start, time.Duration(resp.TTL)*time.Second
	return nil
}

// releaseUnusedGrant revokes a granted etcd lease that no key uses.
func (a *allocation) releaseUnusedGrant() {
	if a.grant == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.m.cli.Revoke(ctx, a.grant); err != nil {
		a.m.log.Debug("revoke unused etcd lease", "lease", a.grant, "err", err)
	}
}
