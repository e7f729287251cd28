//go:build !unit

package subnet_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/subnet"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newManager(t testing.TB, cli *clientv3.Client, opts subnet.Options) *subnet.Manager {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	return subnet.NewManager(cli, opts)
}

func mustConfig(t testing.TB, js string) *subnet.Config {
	t.Helper()
	c, err := subnet.ParseConfig([]byte(js))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	return c
}

// pool50 has exactly 50 subnets: 10.244.10.0/24 .. 10.244.59.0/24.
const pool50 = `{"Network":"10.244.0.0/16","SubnetMin":"10.244.10.0","SubnetMax":"10.244.59.0"}`

func attrs(i int) subnet.LeaseAttrs {
	return subnet.NewLeaseAttrs(netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i)), 8285)
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
