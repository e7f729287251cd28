package flannel

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/weftnet/weft/subnet/embedded"
	"github.com/weftnet/weft/testbed"
)

// EtcdPort is the client port of StartEtcd's member.
const EtcdPort = 2379

// StartEtcdIn runs an etcd member (data in dir) in this process whose
// sockets live in host h's namespace (made there, they stay there),
// listening on h's underlay address: every host of the bed reaches it, and
// no weftd or flanneld has to host it, so each node can be swapped. It
// returns the client URL and a function that stops the member.
func StartEtcdIn(h *testbed.Host, dir string) (string, func(), error) {
	url := "http://" + netip.AddrPortFrom(h.IP, EtcdPort).String()
	var emb *embedded.Etcd
	err := ns.WithNetNSPath(h.NS.Path(), func(ns.NetNS) error {
		var err error
		emb, err = embedded.Start(embedded.Options{
			Dir:           filepath.Join(dir, "etcd"),
			ClientURL:     url,
			PeerURL:       "http://" + netip.AddrPortFrom(h.IP, EtcdPort+1).String(),
			Logger:        slog.New(slog.DiscardHandler),
			UnsafeNoFsync: true,
		})
		return err
	})
	if err != nil {
		return "", nil, fmt.Errorf("etcd in %s: %w", h.NS.Name, err)
	}
	return url, emb.Close, nil
}

// StartEtcd is StartEtcdIn for a test: it fails the test on error and
// stops the member when the test ends.
func StartEtcd(t testing.TB, h *testbed.Host) string {
	t.Helper()
	url, stop, err := StartEtcdIn(h, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return url
}

// PutConfig stores a network config at prefix/config in the etcd at url,
// reached from host h's namespace (as flannel's docs do with etcdctl).
func PutConfig(ctx context.Context, h *testbed.Host, url, prefix, config string) error {
	dial := func(ctx context.Context, addr string) (net.Conn, error) { return h.NS.DialContext(ctx, "tcp", addr) }
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)}})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, prefix+"/config", config); err != nil {
		return fmt.Errorf("store the network config: %w", err)
	}
	return nil
}
