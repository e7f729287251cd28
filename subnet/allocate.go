package subnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
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
//
// In a dual-stack network the lease holds a subnet of each family under
// one key (flannel's "10.5.1.0-24&fc00::-64"), so both are taken in one
// Txn or neither; that Txn also requires that no lease key changed since
// the listing it picked from (one IPv6 subnet cannot be guarded by one
// key name). previous holds the subnets used before, at most one per
// family (invalid ones are ignored). A lease this node holds that lacks a
// family the network now has (EnableIPv6 switched on) keeps its subnet and
// gets the other family's added: its key is replaced by the dual one in
// one Txn; likewise a family the network no longer has is dropped. No
// subnet this node holds is given up.
func (m *Manager) AcquireLease(ctx context.Context, cfg *Config, attrs LeaseAttrs, previous ...netip.Prefix) (Lease, error) {
	if cfg == nil {
		return Lease{}, errors.New("acquire lease: network config is nil")
	}
	if err := attrs.validate(); err != nil {
		return Lease{}, fmt.Errorf("acquire lease: %w", err)
	}
	if !cfg.HasIPv4() && attrs.PublicIPv6 == "" {
		return Lease{}, errors.New("acquire lease: an IPv6-only network needs this node's IPv6 PublicIP (PublicIPv6)")
	}
	value, err := attrs.marshal()
	if err != nil {
		return Lease{}, err
	}
	a := &allocation{m: m, cfg: cfg, attrs: attrs, value: value}
	for _, p := range previous {
		switch {
		case !p.IsValid():
		case p.Addr().Is4():
			a.previous = p
		default:
			a.previous6 = p
		}
	}
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
	m         *Manager
	cfg       *Config
	attrs     LeaseAttrs
	value     string
	previous  netip.Prefix // IPv4
	previous6 netip.Prefix

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
	if own, ok := a.findOwn(append(l.leases, l.oneFamily...)); ok {
		if target, complete := a.complete(own.Lease, l.taken); complete {
			if target.keyName() != strings.TrimPrefix(own.key, a.m.subnetsPrefix()) {
				return a.rekey(ctx, own, target, l.rev)
			}
			return a.reuse(ctx, own)
		}
		// The family missing from our key has no free subnet: say so
		// rather than take another subnet of the family we hold.
		return Lease{}, false, fmt.Errorf("%w: this node holds %s but no %s subnet is free to go with it", ErrPoolExhausted, own.Lease, a.missingFamily(own.Lease))
	}
	var target Lease
	if a.cfg.HasIPv4() {
		subnet, ok := a.pickFree(l.taken)
		if !ok {
			return a.fromJunk(ctx, l, fmt.Errorf("%w: all %d subnets of %s in [%s, %s] are taken",
				ErrPoolExhausted, a.cfg.subnetCount(), a.cfg.Network, a.cfg.SubnetMin, a.cfg.SubnetMax))
		}
		target.Subnet = subnet
	}
	if a.cfg.HasIPv6() {
		subnet, ok := a.pickFree6(l.taken)
		if !ok {
			return a.fromJunk(ctx, l, fmt.Errorf("%w: every IPv6 subnet of %s in [%s, %s] is taken",
				ErrPoolExhausted, a.cfg.IPv6Network, a.cfg.IPv6SubnetMin, a.cfg.IPv6SubnetMax))
		}
		target.IPv6Subnet = subnet
	}
	return a.create(ctx, target, l.rev)
}

// fromJunk reclaims a junk key when no subnet is free, else returns full.
func (a *allocation) fromJunk(ctx context.Context, l *listing, full error) (Lease, bool, error) {
	if junk, ok := a.pickJunk(l.junk); ok {
		return a.reclaim(ctx, junk)
	}
	return Lease{}, false, full
}

// complete returns own with the subnets of the network's families: the
// ones own holds, a free one (the previous one if free) for a family it
// lacks; a family the network does not have is dropped. complete is false
// when no subnet of a missing family is free.
func (a *allocation) complete(own Lease, taken map[netip.Prefix]bool) (Lease, bool) {
	t := Lease{Subnet: own.Subnet, IPv6Subnet: own.IPv6Subnet}
	a.cfg.dropOtherFamilies(&t)
	ok := true
	if a.cfg.HasIPv4() && !t.Subnet.IsValid() {
		t.Subnet, ok = a.pickFree(taken)
	}
	if ok && a.cfg.HasIPv6() && !t.IPv6Subnet.IsValid() {
		t.IPv6Subnet, ok = a.pickFree6(taken)
	}
	return t, ok
}

// missingFamily names the family own lacks.
func (a *allocation) missingFamily(own Lease) string {
	if a.cfg.HasIPv4() && !own.Subnet.IsValid() {
		return "IPv4"
	}
	return "IPv6"
}

// dirUnchanged is the Txn condition that no lease key was written since
// revision rev (the listing's): with it, a subnet picked as free from the
// listing is still free, whatever key name another node used for it.
func (a *allocation) dirUnchanged(rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(a.m.subnetsPrefix()), "<", rev+1).WithPrefix()
}

// rekey moves this node's lease from own's key to target's (same subnets
// of the families both have), in one Txn: own's key unchanged since read,
// no lease key written since the listing, target's key absent. A
// reservation stays one; a lease goes on a fresh etcd lease.
func (a *allocation) rekey(ctx context.Context, own storedLease, target Lease, rev int64) (Lease, bool, error) {
	var opts []clientv3.OpOption
	if !own.Reservation {
		if err := a.ensureGrant(ctx); err != nil {
			return Lease{}, false, err
		}
		opts = append(opts, clientv3.WithLease(a.grant))
	}
	key := a.m.LeaseKeyOf(target)
	resp, err := a.m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(own.key), "=", own.modRevision),
			clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
			a.dirUnchanged(rev)).
		Then(clientv3.OpDelete(own.key), clientv3.OpPut(key, a.value, opts...)).
		Commit()
	if err != nil {
		return Lease{}, false, fmt.Errorf("move lease %s to %s: %w", own.key, key, err)
	}
	a.m.touch()
	if !resp.Succeeded {
		return Lease{}, false, nil
	}
	a.m.log.Warn("this node's lease lacked an address family of the network (or had one it no longer has): moved it to the key of the network's families, keeping its subnets",
		"old_key", own.key, "new_key", key)
	if own.Reservation {
		target.Attrs, target.Reservation = a.attrs, true
		return target, true, nil
	}
	if own.leaseID != 0 {
		if _, err := a.m.cli.Revoke(ctx, own.leaseID); err != nil {
			a.m.log.Debug("revoke old etcd lease", "lease", own.leaseID, "err", err)
		}
	}
	return a.granted(target), true, nil
}

// pickJunk chooses a random reclaimable key in range: one whose name holds
// exactly the network's families, each in range.
func (a *allocation) pickJunk(junk []storedLease) (storedLease, bool) {
	var in []storedLease
	for _, j := range junk {
		if j.Subnet.IsValid() == a.cfg.HasIPv4() && j.IPv6Subnet.IsValid() == a.cfg.HasIPv6() &&
			(!j.Subnet.IsValid() || a.cfg.Contains(j.Subnet)) && (!j.IPv6Subnet.IsValid() || a.cfg.Contains(j.IPv6Subnet)) {
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
	key := junk.key
	resp, err := a.m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", junk.modRevision), clientv3.Compare(clientv3.LeaseValue(key), "=", 0)).
		Then(clientv3.OpPut(key, a.value, clientv3.WithLease(a.grant))).
		Commit()
	if err != nil {
		return Lease{}, false, fmt.Errorf("reclaim subnet %s: %w", junk.Lease, err)
	}
	a.m.touch()
	if !resp.Succeeded {
		return Lease{}, false, nil
	}
	a.m.log.Warn("pool full: took a subnet whose key held no usable lease and no TTL", "subnet", junk.Lease.String(), "old_value", junk.junkValue)
	return a.granted(Lease{Subnet: junk.Subnet, IPv6Subnet: junk.IPv6Subnet}), true, nil
}

// findOwn returns the lease our PublicIP holds in range, preferring a
// reservation, then the previous subnet. A lease of this node's with one
// family in a dual-stack network counts when that family's subnet is in
// range.
func (a *allocation) findOwn(stored []storedLease) (storedLease, bool) {
	var best storedLease
	found := false
	for _, sl := range stored {
		if !sl.Attrs.sameHost(a.attrs) || !a.inRange(sl.Lease) {
			continue
		}
		switch {
		case !found:
			best, found = sl, true
		case sl.Reservation && !best.Reservation:
			best = sl
		case sl.Reservation == best.Reservation && (sl.Subnet == a.previous && a.previous.IsValid() || sl.IPv6Subnet == a.previous6 && a.previous6.IsValid()):
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

// inRange tells whether l's subnets of the network's families are in
// range, and it has one of them at least.
func (a *allocation) inRange(l Lease) bool {
	t := Lease{Subnet: l.Subnet, IPv6Subnet: l.IPv6Subnet}
	a.cfg.dropOtherFamilies(&t)
	if !t.Subnet.IsValid() && !t.IPv6Subnet.IsValid() {
		return false
	}
	return (!t.Subnet.IsValid() || a.cfg.Contains(t.Subnet)) && (!t.IPv6Subnet.IsValid() || a.cfg.Contains(t.IPv6Subnet))
}

// pickFree6 chooses previous6 if free, else a random free IPv6 subnet
// (among the first 2^maxIPv6IndexBits from IPv6SubnetMin).
func (a *allocation) pickFree6(taken map[netip.Prefix]bool) (netip.Prefix, bool) {
	if a.previous6.IsValid() && a.cfg.Contains(a.previous6) && !taken[a.previous6] {
		return a.previous6, true
	}
	n := a.cfg.subnetCount6()
	for range 16 {
		s := a.cfg.subnetAt6(rand.Uint64N(n))
		if !taken[s] {
			return s, true
		}
	}
	// Nearly full (or small): from a random start, the next len(taken)+1
	// subnets hold a free one if any is.
	start := rand.Uint64N(n)
	for i := range min(n, uint64(len(taken))+1) {
		s := a.cfg.subnetAt6((start + i) % n)
		if !taken[s] {
			return s, true
		}
	}
	return netip.Prefix{}, false
}

// reuse refreshes the lease we already hold.
func (a *allocation) reuse(ctx context.Context, own storedLease) (Lease, bool, error) {
	key := own.key
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
		a.m.log.Info("using reserved subnet", "subnet", own.Lease.String())
		return Lease{Subnet: own.Subnet, IPv6Subnet: own.IPv6Subnet, Attrs: a.attrs, Reservation: true}, true, nil
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
	a.m.log.Info("reusing subnet lease", "subnet", own.Lease.String())
	return a.granted(Lease{Subnet: own.Subnet, IPv6Subnet: own.IPv6Subnet}), true, nil
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
	key := own.key
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
	a.m.log.Info("reusing subnet lease", "subnet", own.Lease.String(), "etcdLease", fmt.Sprintf("%x", int64(own.leaseID)))
	return Lease{Subnet: own.Subnet, IPv6Subnet: own.IPv6Subnet, Attrs: a.attrs, Expiration: start.Add(time.Duration(ka.TTL) * time.Second)}, true, false, nil
}

// create takes free subnets (target's) if they are still free: their key
// absent, and with IPv6 no lease key written since the listing at rev.
func (a *allocation) create(ctx context.Context, target Lease, rev int64) (Lease, bool, error) {
	if err := a.ensureGrant(ctx); err != nil {
		return Lease{}, false, err
	}
	key := a.m.LeaseKeyOf(target)
	conds := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}
	if target.IPv6Subnet.IsValid() {
		conds = append(conds, a.dirUnchanged(rev))
	}
	resp, err := a.m.cli.Txn(ctx).
		If(conds...).
		Then(clientv3.OpPut(key, a.value, clientv3.WithLease(a.grant))).
		Commit()
	if err != nil {
		return Lease{}, false, fmt.Errorf("take subnet %s: %w", target, err)
	}
	a.m.touch()
	if !resp.Succeeded {
		return Lease{}, false, nil
	}
	if a.cfg.HasIPv6() {
		a.m.log.Info("took subnet lease", "subnet", target.Subnet, "ipv6_subnet", target.IPv6Subnet, "previous", a.previous, "previous_ipv6", a.previous6)
	} else {
		a.m.log.Info("took subnet lease", "subnet", target.Subnet, "previous", a.previous)
	}
	return a.granted(target), true, nil
}

// granted builds the Lease for target's subnets on the current grant,
// which is thereby used.
func (a *allocation) granted(target Lease) Lease {
	l := Lease{Subnet: target.Subnet, IPv6Subnet: target.IPv6Subnet, Attrs: a.attrs, Expiration: a.grantGranted.Add(a.grantTTL)}
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
