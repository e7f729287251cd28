package subnet

import (
	"context"
	"net/netip"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// WatchLeases delivers the lease table of the other nodes: first
// handle(snapshot, nil) with every lease except own, then handle(nil,
// events) for each batch of changes. After etcd trouble that breaks the
// watch (lost leader, compaction past the watched revision) it lists again
// with backoff and delivers a fresh snapshot. Malformed keys and values
// are logged and skipped. handle runs on the calling goroutine, in order.
// WatchLeases returns nil once ctx is done.
//
// Leases delivered here have no Expiration (TTLs are not looked up).
func (m *Manager) WatchLeases(ctx context.Context, own netip.Prefix, handle func(snapshot []Lease, events []Event)) error {
	w := &watcher{m: m, own: own, handle: handle}
	delay := minRetryDelay
	for ctx.Err() == nil {
		progressed, err := w.listAndWatch(ctx)
		if ctx.Err() != nil {
			break
		}
		if progressed {
			delay = minRetryDelay
		}
		m.log.Warn("lease watch interrupted, listing again", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(delay*2, maxRetryDelay)
	}
	return nil
}

// listTimeout bounds one listing, so that an unreachable etcd is logged
// and retried rather than waited for silently.
const listTimeout = 15 * time.Second

type watcher struct {
	m      *Manager
	own    netip.Prefix
	handle func([]Lease, []Event)
	// ownIP is the PublicIP on our own subnet's key, to spot others
	// claiming it.
	ownIP string
}

// listAndWatch lists, delivers the snapshot and follows changes until the
// watch breaks. progressed tells whether a snapshot was delivered.
func (w *watcher) listAndWatch(ctx context.Context) (progressed bool, err error) {
	lctx, cancel := context.WithTimeout(ctx, listTimeout)
	stored, _, rev, err := w.m.listStored(lctx)
	cancel()
	if err != nil {
		return false, err
	}
	snapshot := make([]Lease, 0, len(stored))
	for _, sl := range stored {
		if sl.Subnet == w.own {
			w.ownIP = sl.Attrs.PublicIP
			continue
		}
		snapshot = append(snapshot, sl.Lease)
	}
	w.handle(snapshot, nil)

	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := w.m.cli.Watch(wctx, w.m.subnetsPrefix(),
		clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV())
	for resp := range wch {
		if err := resp.Err(); err != nil {
			return true, err
		}
		w.m.touch()
		if events := w.convert(resp.Events); len(events) > 0 {
			w.handle(nil, events)
		}
	}
	return true, ctx.Err()
}

// convert turns etcd events into lease events, dropping malformed ones and
// our own subnet.
func (w *watcher) convert(evs []*clientv3.Event) []Event {
	var out []Event
	for _, ev := range evs {
		switch ev.Type {
		case mvccpb.PUT:
			sl, err := w.m.decodeLeaseKV(ev.Kv)
			if err != nil {
				w.m.log.Warn("ignoring malformed lease", "key", string(ev.Kv.Key), "err", err)
				continue
			}
			if sl.Subnet == w.own {
				if w.ownIP != "" && sl.Attrs.PublicIP != w.ownIP {
					w.m.log.Warn("ignoring a lease that claims our subnet", "subnet", sl.Subnet, "public_ip", sl.Attrs.PublicIP)
				}
				continue
			}
			out = append(out, Event{Type: EventAdded, Lease: sl.Lease})
		case mvccpb.DELETE:
			sl, err := w.m.decodeLeaseKV(ev.Kv)
			if !sl.Subnet.IsValid() {
				w.m.log.Warn("ignoring deletion of malformed lease key", "key", string(ev.Kv.Key), "err", err)
				continue
			}
			if sl.Subnet == w.own {
				continue
			}
			l := Lease{Subnet: sl.Subnet}
			if ev.PrevKv != nil {
				if prev, perr := w.m.decodeLeaseKV(ev.PrevKv); perr == nil {
					l = prev.Lease
				}
			}
			out = append(out, Event{Type: EventRemoved, Lease: l})
		}
	}
	return out
}
