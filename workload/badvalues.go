package workload

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Kinds of etcd values the policy view reads (ValueKinds lists them). An
// attachment's kind keeps the name of its etcd directory, "endpoint" (the
// label of weft_malformed_values_total and the word in the log lines).
const (
	KindAttachment = "endpoint"
	KindNamespace  = "namespace"
	KindPolicy     = "policy"
)

// ValueKinds are the kinds MalformedValues counts.
var ValueKinds = [...]string{KindAttachment, KindNamespace, KindPolicy}

// badValueBurst malformed values are logged one line each per
// badValueInterval; the others are counted into one line when the
// interval ends.
const (
	badValueBurst    = 5
	badValueInterval = 30 * time.Second
	// maxReasonBytes cuts a reason (an error that may quote the value)
	// for the log.
	maxReasonBytes = 200
)

// badValueLog logs malformed attachment, namespace and policy values as
// malformed leases are logged: rate-limited, with the key and the reason,
// never the value whole (a junk value of 100 KB was logged whole, 5,000 of
// them made 5,050 lines at every start), and counts them by kind.
type badValueLog struct {
	log    *slog.Logger
	counts [len(ValueKinds)]atomic.Uint64

	mu         sync.Mutex
	window     time.Time // start of the current interval
	logged     int       // lines written in it
	suppressed int       // values not logged in it
	last       string    // the last of those, for the summary
	flushing   bool      // a summary is scheduled
}

// report logs (or counts into a later summary) one malformed value.
func (b *badValueLog) report(kind string, key []byte, msg string, reason string) {
	for i, k := range ValueKinds {
		if k == kind {
			b.counts[i].Add(1)
		}
	}
	if len(reason) > maxReasonBytes {
		reason = reason[:maxReasonBytes] + "..."
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if now.Sub(b.window) >= badValueInterval {
		b.flushLocked()
		b.window, b.logged = now, 0
	}
	if b.logged < badValueBurst {
		b.logged++
		b.log.Warn(msg, "kind", kind, "key", quoteValue(key), "err", reason)
		return
	}
	b.suppressed++
	b.last = kind + " " + quoteValue(key) + ": " + reason
	if !b.flushing {
		b.flushing = true
		time.AfterFunc(time.Until(b.window.Add(badValueInterval)), func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.flushLocked()
		})
	}
}

// flushLocked writes the summary of the values not logged, if any.
func (b *badValueLog) flushLocked() {
	b.flushing = false
	if b.suppressed == 0 {
		return
	}
	b.log.Warn("ignored more malformed values from etcd", "count", b.suppressed, "interval", badValueInterval, "last", b.last)
	b.suppressed, b.last = 0, ""
}

// MalformedValues returns how many malformed values of each kind (in
// ValueKinds' order) were read from etcd since the Manager was made; a
// value read again (a relisting, a restart of the view) counts again.
func (s *Store) MalformedValues() [len(ValueKinds)]uint64 {
	var out [len(ValueKinds)]uint64
	for i := range out {
		out[i] = s.bad.counts[i].Load()
	}
	return out
}
