package workload

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultViewDebounce is how long WatchView collects changes after the
// first one before it hands out a new view.
const DefaultViewDebounce = 50 * time.Millisecond

// WatchView hands handle a full, consistent View of attachments, namespaces
// and policies: once at the start and again after every change (changes
// arriving within debounce of the first are delivered together; zero means
// DefaultViewDebounce). Changes that arrive while handle runs are
// delivered together afterwards. After etcd trouble that breaks the watch
// it lists again with backoff and hands out a fresh view. Malformed keys
// and values are logged and left out. handle runs on the calling
// goroutine; WatchView returns nil once ctx is done.
func (s *Store) WatchView(ctx context.Context, debounce time.Duration, handle func(View)) error {
	if debounce <= 0 {
		debounce = DefaultViewDebounce
	}
	w := &viewWatcher{s: s, debounce: debounce, handle: handle}
	s.relist(ctx, "policy view watch", w.listAndWatch)
	return nil
}

// GetView reads the current View once.
func (s *Store) GetView(ctx context.Context) (View, error) {
	w := &viewWatcher{s: s}
	if err := w.list(ctx); err != nil {
		return View{}, err
	}
	return w.view(), nil
}

type viewWatcher struct {
	s        *Store
	debounce time.Duration
	handle   func(View)

	attachments map[string]Attachment // by key
	namespaces  map[string]Namespace
	policies    map[string]Policy
	rev         int64
}

// list reads the three directories at one revision, in pages that fit
// the client's receive limit (scanPrefixAt): however much is stored, the
// view loads, and no single response holds it all.
func (w *viewWatcher) list(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	w.attachments, w.namespaces, w.policies = map[string]Attachment{}, map[string]Namespace{}, map[string]Policy{}
	rev := int64(0)
	for _, dir := range []string{w.s.attachmentsPrefix(), w.s.namespacesPrefix(), w.s.policiesPrefix()} {
		r, err := w.s.scanPrefixAt(ctx, dir, rev, w.put)
		if err != nil {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		rev = r
	}
	w.rev = rev
	return nil
}

// put applies one key's new value.
func (w *viewWatcher) put(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	w.remove(key)
	switch {
	case strings.HasPrefix(key, w.s.attachmentsPrefix()):
		if ep, ok := w.s.attachmentFromKV(kv); ok {
			w.attachments[key] = ep
		}
	case strings.HasPrefix(key, w.s.namespacesPrefix()):
		if ns, ok := w.s.namespaceFromKV(kv); ok {
			w.namespaces[key] = ns
		}
	case strings.HasPrefix(key, w.s.policiesPrefix()):
		if p, ok := w.s.policyFromKV(kv); ok {
			w.policies[key] = p
		}
	}
}

func (w *viewWatcher) remove(key string) {
	delete(w.attachments, key)
	delete(w.namespaces, key)
	delete(w.policies, key)
}

// relevant tells whether a key belongs to the view.
func (w *viewWatcher) relevant(key []byte) bool {
	k := string(key)
	return strings.HasPrefix(k, w.s.attachmentsPrefix()) ||
		strings.HasPrefix(k, w.s.namespacesPrefix()) ||
		strings.HasPrefix(k, w.s.policiesPrefix())
}

// apply takes in one watch response; it tells whether the view changed.
func (w *viewWatcher) apply(resp clientv3.WatchResponse) bool {
	changed := false
	for _, ev := range resp.Events {
		if !w.relevant(ev.Kv.Key) {
			continue
		}
		changed = true
		switch ev.Type {
		case mvccpb.PUT:
			w.put(ev.Kv)
		case mvccpb.DELETE:
			w.remove(string(ev.Kv.Key))
		}
	}
	if resp.Header.Revision > w.rev {
		w.rev = resp.Header.Revision
	}
	return changed
}

// view builds an immutable View of the current maps.
func (w *viewWatcher) view() View {
	v := View{
		Attachments: slices.Collect(maps.Values(w.attachments)),
		Policies:    slices.Collect(maps.Values(w.policies)),
		Revision:    w.rev,
	}
	sortAttachments(v.Attachments)
	sortPolicies(v.Policies)
	byName := make(map[string]Namespace, len(w.namespaces))
	for _, ns := range w.namespaces {
		byName[ns.Name] = ns
	}
	implicit := func(name string) {
		if _, ok := byName[name]; !ok {
			byName[name] = Namespace{Name: name, Labels: withNameLabel(name, nil)}
		}
	}
	for _, ep := range v.Attachments {
		implicit(ep.Namespace)
	}
	for _, p := range v.Policies {
		implicit(p.Namespace)
	}
	v.Namespaces = slices.Collect(maps.Values(byName))
	slices.SortFunc(v.Namespaces, func(a, b Namespace) int { return strings.Compare(a.Name, b.Name) })
	return v
}

// listAndWatch lists, hands out the view and follows changes until the
// watch breaks. progressed tells whether a view was handed out.
func (w *viewWatcher) listAndWatch(ctx context.Context) (progressed bool, err error) {
	if err := w.list(ctx); err != nil {
		return false, err
	}
	w.handle(w.view())

	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	// One watch over the whole prefix keeps the three directories in one
	// revision order; the other keys (leases, config) are skipped.
	wch := w.s.cli.Watch(wctx, w.s.prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(w.rev+1))
	for {
		resp, ok := <-wch
		if !ok {
			return true, ctx.Err()
		}
		if err := resp.Err(); err != nil {
			return true, err
		}
		w.s.touch()
		if !w.apply(resp) {
			continue
		}
		// Collect what else arrives within the debounce, then hand out.
		timer := time.NewTimer(w.debounce)
	collect:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return true, ctx.Err()
			case <-timer.C:
				break collect
			case resp, ok := <-wch:
				if !ok {
					timer.Stop()
					return true, ctx.Err()
				}
				if err := resp.Err(); err != nil {
					timer.Stop()
					return true, err
				}
				w.apply(resp)
			}
		}
		w.handle(w.view())
	}
}
