//go:build !unit

package registry_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/cni/daemonsock"
	"github.com/weftnet/weft/cni/registry"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/etcdtest"
	"github.com/weftnet/weft/workload"
)

// Issue 21: a dual-stack container is registered once per address with
// the same identity, so both are in the workload store for policy to
// select; an IPv6 address outside the node's IPv6 subnet, or on a node
// without IPv6, is refused; DEL withdraws both; after a restart both are
// published again while the plugin's store still holds them.
func TestRegistryDualStack(t *testing.T) {
	srv := etcdtest.Start(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mgr := subnet.NewManager(srv.Client(t), subnet.Options{Logger: log})
	store := workload.New(mgr, log)
	dir := t.TempDir()
	ipam := filepath.Join(dir, "ipam")
	if err := os.MkdirAll(ipam, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := func(o registry.Options) (stop func()) {
		t.Helper()
		o.Node, o.Store, o.Log, o.TTL = "192.0.2.1", store, log, 5*time.Second
		o.File, o.Socket = filepath.Join(dir, "endpoints.json"), filepath.Join(dir, "cni.sock")
		o.Retry = func(ctx context.Context, _ string, fn func(context.Context) error) error { return fn(ctx) }
		rctx, rcancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		if _, err := registry.Start(rctx, &wg, o); err != nil {
			rcancel()
			t.Fatal(err)
		}
		return func() { rcancel(); wg.Wait() }
	}
	dual := registry.Options{Subnet: netip.MustParsePrefix("10.244.1.0/24"), IPv6Subnet: netip.MustParsePrefix("fd10:244:0:1::/64")}
	stop := start(dual)
	sock := filepath.Join(dir, "cni.sock")
	add := func(ip, id string) error {
		os.WriteFile(filepath.Join(ipam, ip), []byte(id+"\r\neth0"), 0o644)
		return daemonsock.Send(ctx, sock, daemonsock.Request{Op: "add", IP: netip.MustParseAddr(ip), Namespace: "shop", Pod: "web-1",
			Labels: map[string]string{"app": "web"}, ContainerID: id, IfName: "eth0", DataDir: ipam})
	}
	published := func() []string {
		t.Helper()
		eps, err := store.ListAttachments(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, e := range eps {
			s = append(s, e.IP.String()+" "+e.Namespace+"/"+e.Pod+" app="+e.Labels["app"]+" "+e.ContainerID)
		}
		slices.Sort(s)
		return s
	}
	for _, ip := range []string{"10.244.1.2", "fd10:244:0:1::2"} {
		if err := add(ip, "c1"); err != nil {
			t.Fatalf("add %s: %v", ip, err)
		}
	}
	want := []string{"10.244.1.2 shop/web-1 app=web c1", "fd10:244:0:1::2 shop/web-1 app=web c1"}
	if got := published(); !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	if err := add("fd10:244:0:2::2", "c2"); err == nil || !strings.Contains(err.Error(), "fd10:244:0:2::2 is not in this node's subnet fd10:244:0:1::/64") {
		t.Fatalf("IPv6 outside the node's subnet: %v", err)
	}
	if err := add("::ffff:10.244.1.9", "c2"); err == nil || !strings.Contains(err.Error(), "not an IPv4 or IPv6 address") {
		t.Fatalf("IPv4-mapped address: %v", err)
	}

	// A restart publishes both again (the plugin's store still holds them).
	stop()
	stop = start(dual)
	if got := published(); !slices.Equal(got, want) {
		t.Fatalf("after a restart %v, want %v", got, want)
	}
	// DEL of the interface without an address withdraws both.
	if err := daemonsock.Send(ctx, sock, daemonsock.Request{Op: "del", ContainerID: "c1", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	if got := published(); len(got) != 0 {
		t.Fatalf("after DEL: %v", got)
	}
	stop()

	// A node whose network has no IPv6 refuses IPv6 containers.
	stop = start(registry.Options{Subnet: dual.Subnet})
	defer stop()
	if err := add("fd10:244:0:1::3", "c3"); err == nil || !strings.Contains(err.Error(), "this node's network has no IPv6 subnet") {
		t.Fatalf("IPv6 on an IPv4-only node: %v", err)
	}
	if err := add("10.244.1.3", "c3"); err != nil {
		t.Fatal(err)
	}
}
