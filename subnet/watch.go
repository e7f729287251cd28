package subnet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"net/netip"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/subnet/etcdread"
)

// WatchLeases delivers the lease table of the other nodes: first
// handle(snapshot, nil) with every lease except own, then handle(nil,
// events) for each batch of changes. After etcd trouble that breaks the
// watch (lost leader, compaction past the watched revision) it lists again
// with backoff and delivers a fresh snapshot. handle runs on the calling
// goroutine, in order. WatchLeases returns nil once ctx is done.
//
// Keys that are no usable lease (a malformed name or value, a value over
// MaxLeaseValueSize, a PublicIP that is not unicast, a subnet that is not a
// /SubnetLen of cfg's network) are skipped (a lease overwritten with junk
// is kept as it was, for its node to restore). They are counted
// (MalformedLeases) and logged sparingly: one summary line per listing,
// and for watch events the first one at once and then a count at most every
// malformedLogInterval. A lease whose endpoint changes without a deletion
// in between is logged at WARN: a hijack of a subnet looks like this.
//
// Leases delivered here have no Expiration (TTLs are not looked up).
//
// own is this node's lease's Primary subnet. In a dual-stack network a key
// with one family only is skipped too (counted, logged once per key); a
// key's subnet of a family the network does not have is dropped from the
// lease delivered.
//
// One subnet can appear under several key names ("10.5.1.0-24",
// "10.5.1.0-24&fc00::-64", "10.5.9.0-24&fc00::-64" all name 10.5.1.0/24 or
// fc00::/64): of the keys naming a subnet the first created holds it (what
// an allocation, which sees every key's subnets as taken, leaves), and a
// later one is skipped and counted as malformed (logged at WARN): a stray
// writer's key takes no peer's or our own traffic, and its deletion
// removes nothing. A skipped key is delivered once the keys it conflicts
// with are deleted.
func (m *Manager) WatchLeases(ctx context.Context, cfg *Config, own netip.Prefix, handle func(snapshot []Lease, events []Event)) error {
	if cfg == nil {
		return errors.New("watch leases: network config is nil")
	}
	w := &watcher{m: m, cfg: cfg, own: own, handle: handle, seed: maphash.MakeSeed()}
	etcdread.Relist(ctx, m.log, "lease watch", w.listAndWatch)
	return nil
}

// MalformedLeases is how many keys under the lease prefix WatchLeases
// found unusable at its last listing, kept up to date by its watch (0 when
// no WatchLeases runs).
func (m *Manager) MalformedLeases() int { return int(m.malformed.Load()) }

// listTimeout bounds one listing, so that an unreachable etcd is logged
// and retried rather than waited for silently.
const listTimeout = etcdread.ListTimeout

// malformedLogInterval is the least time between two log lines about
// malformed lease events.
const malformedLogInterval = 30 * time.Second

type watcher struct {
	m      *Manager
	cfg    *Config
	own    netip.Prefix
	handle func([]Lease, []Event)
	// ownIP is the PublicIP on our own subnet's key, to spot others
	// claiming it.
	ownIP string
	// own6 is the IPv6 subnet on our own key in a dual-stack network: a
	// key of another name that claims it too is no peer.
	own6 netip.Prefix
	// holders names the key holding each subnet of a delivered lease (and
	// of our own); conflicting holds the keys skipped because a subnet
	// they name is held by another key.
	holders     map[netip.Prefix]string
	conflicting map[string]storedLease
	// endpoints is the endpoint of every lease delivered, to spot changes
	// without a deletion in between.
	endpoints map[netip.Prefix]string
	// malformed holds a hash of each unusable key (keys can be large).
	malformed map[uint64]struct{}
	seed      maphash.Seed
	// Events about malformed keys not logged yet, and when the last line
	// about them was written.
	unlogged  int
	lastLog   time.Time
	lastError string
	// Endpoint changes: how many were logged in the current window, when
	// it began, and how many were not logged.
	movedLogged   int
	movedWindow   time.Time
	movedUnlogged int
	// junkBytes counts the bytes of junk values received since memory
	// was last handed back (see etcdread.JunkBytesToFree).
	junkBytes int
}

// listAndWatch lists, delivers the snapshot and follows changes until the
// watch breaks. progressed tells whether a snapshot was delivered.
func (w *watcher) listAndWatch(ctx context.Context) (progressed bool, err error) {
	lctx, cancel := context.WithTimeout(ctx, listTimeout)
	malformed := map[uint64]struct{}{}
	l, err := w.m.listStored(lctx, w.cfg, func(kv *mvccpb.KeyValue) { malformed[w.hash(kv.Key)] = struct{}{} })
	cancel()
	if err != nil {
		return false, err
	}
	w.malformed = malformed
	w.m.malformed.Store(int64(len(malformed)))
	endpoints := make(map[netip.Prefix]string, len(l.leases))
	snapshot := make([]Lease, 0, len(l.leases))
	w.holders = make(map[netip.Prefix]string, 2*len(l.leases))
	w.conflicting = map[string]storedLease{}
	// First come holds: our own key first (the first created of those
	// naming our subnet), then the others in the order they were created.
	byAge := slices.Clone(l.leases)
	slices.SortStableFunc(byAge, func(a, b storedLease) int { return cmp.Compare(a.createRevision, b.createRevision) })
	w.own6 = netip.Prefix{}
	for _, sl := range byAge {
		if sl.Primary() == w.own {
			w.own6 = sl.IPv6Subnet
			w.ownIP = sl.Attrs.node()
			w.claim(sl)
			break
		}
	}
	for _, sl := range byAge {
		if sl.Primary() == w.own {
			continue
		}
		if w.conflicts(sl) {
			malformed[w.hash([]byte(sl.key))] = struct{}{}
			w.conflicting[sl.key] = sl
			continue
		}
		w.claim(sl)
	}
	w.m.malformed.Store(int64(len(malformed)))
	for _, sl := range l.leases {
		if sl.Primary() == w.own {
			continue
		}
		if _, skipped := w.conflicting[sl.key]; skipped {
			continue
		}
		ep := sl.Attrs.endpoint()
		if old, ok := w.endpoints[sl.Primary()]; ok && old != ep {
			w.warnMoved(sl.Primary(), old, ep)
		}
		endpoints[sl.Primary()] = ep
		snapshot = append(snapshot, sl.Lease)
	}
	w.endpoints = endpoints
	w.handle(snapshot, nil)

	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	// WithFragment: a response catching up on many large values comes in
	// pieces that each fit the client's receive limit.
	wch := w.m.cli.Watch(wctx, w.m.subnetsPrefix(),
		clientv3.WithPrefix(), clientv3.WithRev(l.rev+1), clientv3.WithPrevKV(), clientv3.WithFragment())
	flush := time.NewTicker(malformedLogInterval)
	defer flush.Stop()
	for {
		select {
		case resp, ok := <-wch:
			if !ok {
				return true, ctx.Err()
			}
			if err := resp.Err(); err != nil {
				return true, err
			}
			w.m.touch()
			if events := w.convert(resp.Events); len(events) > 0 {
				w.handle(nil, events)
			}
			if w.junkBytes > etcdread.JunkBytesToFree {
				w.junkBytes = 0
				etcdread.FreeJunkMemory()
			}
		case <-flush.C:
			w.logMalformed("", true)
			w.flushMoved()
		}
	}
}

func (w *watcher) hash(key []byte) uint64 { return maphash.Bytes(w.seed, key) }

// decode turns a key-value into a lease this node can use, or an error;
// missing tells that the key lacks a family of the network.
func (w *watcher) decode(kv *mvccpb.KeyValue) (sl storedLease, missing bool, err error) {
	sl, err = w.m.decodeLeaseKV(kv)
	if err == nil {
		missing, err = w.cfg.checkFamilies(&sl.Lease)
	}
	return sl, missing, err
}

// convert turns etcd events into lease events, dropping unusable ones and
// our own subnet.
func (w *watcher) convert(evs []*clientv3.Event) []Event {
	var out []Event
	for _, ev := range evs {
		h := w.hash(ev.Kv.Key)
		switch ev.Type {
		case mvccpb.PUT:
			sl, missing, err := w.decode(ev.Kv)
			if missing {
				w.setMalformed(h, true)
				w.m.families.once(w.m.log, sl.key, err)
				continue
			}
			if err != nil {
				w.junkBytes += len(ev.Kv.Value)
				if ev.PrevKv != nil {
					w.junkBytes += len(ev.PrevKv.Value)
				}
				w.setMalformed(h, true)
				// A lease overwritten with junk stays as it was: its node
				// restores its key (KeepLease), and junk redirects nothing.
				w.logMalformed(err.Error(), false)
				continue
			}
			w.setMalformed(h, false)
			if sl.Primary() == w.own {
				if w.ownIP != "" && sl.Attrs.node() != w.ownIP {
					w.m.log.Warn("ignoring a lease that claims our subnet", "subnet", sl.Primary(), "public_ip", sl.Attrs.node())
				}
				continue
			}
			if w.conflicts(sl) {
				w.conflicting[sl.key] = sl
				w.setMalformed(h, true)
				continue
			}
			w.claim(sl)
			out = w.added(out, sl)
		case mvccpb.DELETE:
			if _, bad := w.malformed[h]; bad {
				w.setMalformed(h, false)
				delete(w.conflicting, string(ev.Kv.Key))
				continue
			}
			sl, err := w.m.decodeLeaseKV(ev.Kv)
			if !sl.Subnet.IsValid() && !sl.IPv6Subnet.IsValid() {
				w.logMalformed(fmt.Sprintf("deletion of a malformed lease key: %v", err), false)
				continue
			}
			l := Lease{Subnet: sl.Subnet, IPv6Subnet: sl.IPv6Subnet}
			if ev.PrevKv != nil {
				if prev, perr := w.m.decodeLeaseKV(ev.PrevKv); perr == nil {
					l = prev.Lease
				}
			}
			w.cfg.dropOtherFamilies(&l)
			if l.Primary() == w.own || !l.Primary().IsValid() {
				continue
			}
			if w.holders[l.Primary()] != string(ev.Kv.Key) {
				// Never delivered: its deletion removes nothing.
				continue
			}
			w.release(string(ev.Kv.Key), l)
			delete(w.endpoints, l.Primary())
			out = append(out, Event{Type: EventRemoved, Lease: l})
			out = w.promote(out)
		}
	}
	return out
}

// added records sl's endpoint and appends its delivery to out.
func (w *watcher) added(out []Event, sl storedLease) []Event {
	ep := sl.Attrs.endpoint()
	if old, ok := w.endpoints[sl.Primary()]; ok && old != ep {
		w.warnMoved(sl.Primary(), old, ep)
	}
	w.endpoints[sl.Primary()] = ep
	return append(out, Event{Type: EventAdded, Lease: sl.Lease})
}

// subnets are the valid subnets of l.
func subnets(l Lease) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []netip.Prefix{l.Subnet, l.IPv6Subnet} {
		if p.IsValid() {
			out = append(out, p)
		}
	}
	return out
}

// conflicts tells (and logs) whether a subnet sl names is held by another
// key.
func (w *watcher) conflicts(sl storedLease) bool {
	for _, p := range subnets(sl.Lease) {
		if holder, ok := w.holders[p]; ok && holder != sl.key {
			if p == w.own6 || p == w.own {
				w.m.log.Warn("ignoring a lease that claims our subnet", "key", sl.key, "subnet", p, "public_ip", sl.Attrs.node())
			} else {
				w.m.log.Warn("ignoring a lease that names a subnet another key holds", "key", sl.key, "subnet", p, "holder", holder, "public_ip", sl.Attrs.node())
			}
			return true
		}
	}
	return false
}

// claim makes sl's key the holder of its subnets.
func (w *watcher) claim(sl storedLease) {
	for _, p := range subnets(sl.Lease) {
		w.holders[p] = sl.key
	}
}

// release frees the subnets key held.
func (w *watcher) release(key string, l Lease) {
	for _, p := range subnets(l) {
		if w.holders[p] == key {
			delete(w.holders, p)
		}
	}
}

// promote delivers the skipped keys that conflict with no held subnet any
// more, oldest first.
func (w *watcher) promote(out []Event) []Event {
	if len(w.conflicting) == 0 {
		return out
	}
	waiting := slices.SortedFunc(maps.Values(w.conflicting), func(a, b storedLease) int { return cmp.Compare(a.createRevision, b.createRevision) })
	for _, sl := range waiting {
		if sl.Primary() == w.own {
			continue
		}
		free := true
		for _, p := range subnets(sl.Lease) {
			if _, held := w.holders[p]; held {
				free = false
			}
		}
		if !free {
			continue
		}
		delete(w.conflicting, sl.key)
		w.setMalformed(w.hash([]byte(sl.key)), false)
		w.claim(sl)
		out = w.added(out, sl)
	}
	return out
}

func (w *watcher) setMalformed(h uint64, bad bool) {
	if bad {
		w.malformed[h] = struct{}{}
	} else {
		delete(w.malformed, h)
	}
	w.m.malformed.Store(int64(len(w.malformed)))
}

// logMalformed logs an event about a malformed key: at once if no line was
// written for malformedLogInterval, else it is counted for a later line.
// flush writes the count of events not logged yet, if any.
func (w *watcher) logMalformed(reason string, flush bool) {
	if !flush {
		w.unlogged++
		w.lastError = reason
		if time.Since(w.lastLog) < malformedLogInterval {
			return
		}
	}
	if w.unlogged == 0 {
		return
	}
	w.m.log.Warn("ignoring malformed lease events", "count", w.unlogged, "last", w.lastError, "malformed_keys", len(w.malformed))
	w.unlogged = 0
	w.lastLog = time.Now()
}

// movedLogBurst endpoint changes are logged one by one per
// malformedLogInterval; more are counted into one line.
const movedLogBurst = 10

func (w *watcher) warnMoved(subnet netip.Prefix, old, now string) {
	if time.Since(w.movedWindow) >= malformedLogInterval {
		w.flushMoved()
		w.movedWindow, w.movedLogged = time.Now(), 0
	}
	if w.movedLogged >= movedLogBurst {
		w.movedUnlogged++
		return
	}
	w.movedLogged++
	w.m.log.Warn("a peer's endpoint changed without its lease being deleted first (a hijack of the subnet looks like this)",
		"subnet", subnet, "old", old, "new", now)
}

// flushMoved logs the count of endpoint changes not logged one by one.
func (w *watcher) flushMoved() {
	if w.movedUnlogged == 0 {
		return
	}
	w.m.log.Warn("more peers' endpoints changed without their leases being deleted first (a hijack of a subnet looks like this)",
		"count", w.movedUnlogged, "within", malformedLogInterval)
	w.movedUnlogged = 0
}
