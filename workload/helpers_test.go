//go:build !unit

package workload_test

import (
	"io"
	"log/slog"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/workload"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newStore returns a Store sharing cli and opts' prefix with a lease
// manager, as weftd makes it.
func newStore(t testing.TB, cli *clientv3.Client, opts subnet.Options) *workload.Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	return workload.New(subnet.NewManager(cli, opts), opts.Logger)
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
