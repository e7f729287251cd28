// Package workload is the workload store: what the policy engine needs to
// know about the containers of every node, as kept in etcd beside the
// subnet leases (same client, same prefix) but apart from them:
//
//	<prefix>/endpoints/<ip>            one container attachment, on its node's liveness lease
//	<prefix>/namespaces/<name>         a namespace's labels ({"labels":{...}})
//	<prefix>/policies/<ns>/<name>      a networking.k8s.io/v1 NetworkPolicy, raw JSON
//	<prefix>/liveness/<node>           the key holding a node's liveness lease
//
// It validates names and labels, stores the policy bytes, publishes a
// node's containers and hands out consistent views of all three
// directories. Leases and the network config are subnet's job; turning a
// view into rules is the policy engine's.
package workload

import (
	"context"
	"log/slog"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/subnet/etcdread"
)

// Etcd is what a Store shares with the lease manager (*subnet.Manager
// implements it): the etcd client, the key prefix, and the record of the
// last successful round trip, which the Store's reads and writes keep up
// to date as the lease manager's do.
type Etcd interface {
	Client() *clientv3.Client
	Prefix() string
	NoteContact()
}

// Store reads and writes the workload directories under the prefix.
type Store struct {
	etcd   Etcd
	cli    *clientv3.Client
	prefix string
	log    *slog.Logger
	bad    *badValueLog // malformed endpoint, namespace and policy values
}

// New returns a Store on e's client and prefix; log nil means
// slog.Default().
func New(e Etcd, log *slog.Logger) *Store {
	if log == nil {
		log = slog.Default()
	}
	return &Store{etcd: e, cli: e.Client(), prefix: e.Prefix(), log: log, bad: &badValueLog{log: log}}
}

// Retries, backoff and bounds, as the lease manager's.
const (
	maxWriteAttempts = 64 // bounds the retries on Txn conflicts
	minRetryDelay    = etcdread.MinRetryDelay
	maxRetryDelay    = etcdread.MaxRetryDelay
	listTimeout      = etcdread.ListTimeout
)

func (s *Store) touch() { s.etcd.NoteContact() }

// relist runs listAndWatch until ctx ends (etcdread.Relist).
func (s *Store) relist(ctx context.Context, what string, listAndWatch func(context.Context) (progressed bool, err error)) {
	etcdread.Relist(ctx, s.log, what, listAndWatch)
}

// scanPrefixAt reads every key under prefix in bounded pages at revision
// rev (0: the first page's) and returns the revision read.
func (s *Store) scanPrefixAt(ctx context.Context, prefix string, rev int64, fn func(*mvccpb.KeyValue)) (int64, error) {
	return etcdread.Reader{Client: s.cli, Contact: s.touch}.ScanPrefix(ctx, prefix, rev, fn)
}

// quoteValue renders a value from etcd for a log line (etcdread.Quote).
func quoteValue(v []byte) string { return etcdread.Quote(v) }
