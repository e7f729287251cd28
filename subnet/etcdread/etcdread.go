// Package etcdread holds the bounded reads that the lease manager (subnet)
// and the workload store (workload) share: a prefix read in pages that fit
// the client's receive limit, a one-key read that survives an oversized
// value, the list-and-watch loop with backoff, and the quoting of values
// for logs. It knows no key layout.
package etcdread

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Backoff bounds for retrying etcd after errors.
const (
	MinRetryDelay = 100 * time.Millisecond
	MaxRetryDelay = 5 * time.Second
)

// ListTimeout bounds one listing, so that an unreachable etcd is logged
// and retried rather than waited for silently.
const ListTimeout = 15 * time.Second

// logValueBytes is how much of a rejected value goes into a log line.
const logValueBytes = 64

// Quote renders a value from etcd for a log line or an error: quoted
// (no control characters reach the log) and cut to logValueBytes.
func Quote(v []byte) string {
	if len(v) <= logValueBytes {
		return strconv.Quote(string(v))
	}
	return strconv.Quote(string(v[:logValueBytes])) + "... (" + strconv.Itoa(len(v)) + " bytes)"
}

// Listing pages: the first has firstPageSize keys; each next one about
// listPageBytes, going by the size of the key-values of the last page, at
// most twice as many keys as the last and at most listPageSize. So leases
// of ~100 bytes are read 64 at a time and junk of large values a few at a
// time, and a page that overshoots (small keys, then large values) costs
// etcd and weftd at most listPageSize values.
const (
	firstPageSize = 8
	listPageSize  = 64
	listPageBytes = 1 << 20
)

// JunkBytesToFree: once this many bytes of listed values (or of junk
// values from the watch) have passed through, the memory is handed back to
// the OS at once (debug.FreeOSMemory) rather than whenever the runtime gets
// to it: junk under the prefix must not leave every node's RSS raised.
const JunkBytesToFree = 8 << 20

// FreeJunkMemory hands the memory of junk just read back to the OS. Two
// collections: the first moves the gRPC client's pooled receive buffers to
// sync.Pool's victim cache, the second (inside FreeOSMemory) drops them.
func FreeJunkMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

// Reader reads through Client and calls Contact (when not nil) after every
// successful round trip.
type Reader struct {
	Client  *clientv3.Client
	Contact func()
}

func (r Reader) contact() {
	if r.Contact != nil {
		r.Contact()
	}
}

// ScanPrefix calls fn for every key under prefix, in pages read at
// revision rev (0: the revision of the first page, so that several
// prefixes are read at one revision). It returns that revision. A page too
// large for the client's receive limit is asked again with fewer keys; a
// single key-value too large for it is passed to fn with its key only (and
// an empty value), so that it counts as malformed instead of stopping the
// listing for good.
func (r Reader) ScanPrefix(ctx context.Context, prefix string, rev int64, fn func(*mvccpb.KeyValue)) (int64, error) {
	from, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	limit := int64(firstPageSize)
	total := 0
	at := func(opts ...clientv3.OpOption) []clientv3.OpOption {
		opts = append(opts, clientv3.WithRange(end))
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		return opts
	}
	for {
		resp, err := r.Client.Get(ctx, from, at(clientv3.WithLimit(limit))...)
		if status.Code(err) == codes.ResourceExhausted {
			if limit > 1 {
				limit = 1 // a value is large: read one at a time, then grow again
				continue
			}
			// One key-value over the limit: skip it, keys only.
			resp, err = r.Client.Get(ctx, from, at(clientv3.WithLimit(1), clientv3.WithKeysOnly())...)
			if err == nil && len(resp.Kvs) == 1 {
				resp.Kvs[0].Value = nil
			}
		}
		if err != nil {
			return 0, err
		}
		r.contact()
		if rev == 0 {
			rev = resp.Header.Revision
		}
		size := 0
		for _, kv := range resp.Kvs {
			size += len(kv.Key) + len(kv.Value)
			fn(kv)
		}
		total += size
		if !resp.More || len(resp.Kvs) == 0 {
			if total > JunkBytesToFree {
				FreeJunkMemory()
			}
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		limit = min(max(int64(listPageBytes*len(resp.Kvs)/max(size, 1)), 1), 2*limit, listPageSize)
	}
}

// GetKey reads one key. A value too large for the client's receive limit
// comes back empty (keys only), so that callers take it as junk instead of
// failing on it for good.
func (r Reader) GetKey(ctx context.Context, key string) (*clientv3.GetResponse, error) {
	resp, err := r.Client.Get(ctx, key)
	if status.Code(err) == codes.ResourceExhausted {
		resp, err = r.Client.Get(ctx, key, clientv3.WithKeysOnly())
	}
	if err != nil {
		return nil, err
	}
	r.contact()
	return resp, nil
}

// Relist runs listAndWatch until ctx ends. After each interruption it logs
// "<what> interrupted, listing again" and waits before the next listing:
// MinRetryDelay, doubling up to MaxRetryDelay, back to MinRetryDelay once a
// watch made progress. The lease watch and the workload view share it.
func Relist(ctx context.Context, log *slog.Logger, what string, listAndWatch func(context.Context) (progressed bool, err error)) {
	delay := MinRetryDelay
	for ctx.Err() == nil {
		progressed, err := listAndWatch(ctx)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			delay = MinRetryDelay
		}
		log.Warn(what+" interrupted, listing again", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(delay*2, MaxRetryDelay)
	}
}
