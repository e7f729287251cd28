package flannel

import (
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/testbed"
)

// EtcdPort is the client port of StartEtcd's member.
const EtcdPort = 2379

// StartEtcd runs an etcd member in the test process whose sockets live in
// host h's namespace (made there, they stay there), listening on h's
// underlay address: every host of the bed reaches it, and no weftd or
// flanneld has to host it, so each node can be swapped. It stops when the
// test ends. It returns the client URL.
func StartEtcd(t testing.TB, h *testbed.Host) string {
	t.Helper()
	url := "http://" + netip.AddrPortFrom(h.IP, EtcdPort).String()
	var emb *subnet.Embedded
	err := ns.WithNetNSPath(h.NS.Path(), func(ns.NetNS) error {
		var err error
		emb, err = subnet.StartEmbedded(subnet.EmbeddedOptions{
			Dir:           filepath.Join(t.TempDir(), "etcd"),
			ClientURL:     url,
			PeerURL:       "http://" + netip.AddrPortFrom(h.IP, EtcdPort+1).String(),
			Logger:        slog.New(slog.DiscardHandler),
			UnsafeNoFsync: true,
		})
		return err
	})
	if err != nil {
		t.Fatalf("etcd in %s: %v", h.NS.Name, err)
	}
	t.Cleanup(emb.Close)
	return url
}
