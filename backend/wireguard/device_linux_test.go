//go:build !unit

package wireguard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/backend/wireguard/keyfile"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/testbed"
)

// uniqueDevice names a device so that its UAPI socket, in the one
// /var/run/wireguard of all namespaces, is the test's own.
func uniqueDevice(t *testing.T) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "wgt" + hex.EncodeToString(b[:])
}

type testNode struct {
	b     *Backend
	host  *testbed.Host
	lease subnet.Lease
	dev   string
}

// startNode runs a wireguard backend in host's namespace: the device, its
// sockets and its netlink handles are made there.
func startNode(t *testing.T, host *testbed.Host, sub string) *testNode {
	t.Helper()
	return startNodeWith(t, host, `{"Network":"10.244.0.0/16","Backend":{"Type":"wireguard"}}`, sub, "")
}

// startNodeWith is startNode with a network config and an IPv6 subnet
// (sub6, "" for none).
func startNodeWith(t *testing.T, host *testbed.Host, config, sub, sub6 string) *testNode {
	t.Helper()
	cfg, err := subnet.ParseConfig([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	dev := uniqueDevice(t)
	be, err := New(backend.Node{Config: cfg, Underlay: backend.Underlay{Name: host.Dev, PublicIP: host.IP, MTU: host.MTU},
		Options: backend.Options{DeviceName: dev, StateDir: t.TempDir()}, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	b := be.(*Backend)
	attrs, err := b.LeaseAttrs()
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{b: b, host: host, dev: dev, lease: subnet.Lease{Subnet: netip.MustParsePrefix(sub), Attrs: attrs}}
	if sub6 != "" {
		n.lease.IPv6Subnet = netip.MustParsePrefix(sub6)
	}
	err = ns.WithNetNSPath(host.NS.Path(), func(ns.NetNS) error { return b.Start(context.Background(), n.lease) })
	t.Cleanup(func() { _ = b.Close() })
	if err != nil {
		t.Fatalf("Start in %s: %v", host.NS.Name, err)
	}
	return n
}

func TestTwoDevicesTalk(t *testing.T) {
	bed := testbed.ForTest(t, "wgdev", 2)
	n1 := startNode(t, bed.Hosts[0], "10.244.1.0/24")
	n2 := startNode(t, bed.Hosts[1], "10.244.2.0/24")
	n1.b.Apply([]subnet.Lease{n2.lease}, nil)
	n2.b.Apply([]subnet.Lease{n1.lease}, nil)
	// In this test both devices live in one process whose threads are in
	// the root namespace: the library brings a device up again when its
	// TUN reports "up" (within a second), on a thread of its own, and so
	// may open the UDP sockets in the root namespace. weftd runs in its
	// host's namespace and never sees this. Once those events are done,
	// open the sockets again inside each host's namespace.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- n2.b.Run(ctx) }()
	if out, err := pingOver(ctx, t, bed, n1, n2, "10.244.2.0"); err != nil {
		t.Fatalf("ping over WireGuard: %v\n%s", err, out)
	}
	// Operators look with Debian's wg: the device, the peer, a handshake.
	show, err := exec.CommandContext(ctx, "wg", "show", n1.dev, "dump").CombinedOutput()
	if err != nil {
		t.Fatalf("wg show %s: %v\n%s", n1.dev, err, show)
	}
	pub2 := n2.b.PublicKey().String()
	if !strings.Contains(string(show), pub2) || !strings.Contains(string(show), "10.244.2.0/24") || !strings.Contains(string(show), bed.Hosts[1].IP.String()+":51820") {
		t.Errorf("wg show dump lacks the peer %s:\n%s", pub2, show)
	}
	st, err := n1.b.Status()
	if err != nil || len(st) != 1 || st[0].LastHandshake == "" || st[0].RxBytes == 0 || st[0].TxBytes == 0 {
		t.Errorf("status %+v, %v; want one peer with a handshake and bytes", st, err)
	}
	if evs := n1.b.evs.snapshot(); evs[EventInitiationSent]+evs[EventInitiationReceived] == 0 {
		t.Errorf("no handshake counted: %v", evs)
	}
	// Rotation: a new key file; the device takes it, the lease attributes
	// change, the peer follows the lease event, traffic continues.
	oldPub := n1.b.PublicKey()
	if _, err := keyfile.Rotate(n1.b.keyPath); err != nil {
		t.Fatal(err)
	}
	n1.b.checkKey()
	select {
	case <-n1.b.LeaseAttrsChanged():
	default:
		t.Fatal("no LeaseAttrsChanged after the key file was replaced")
	}
	attrs, err := n1.b.LeaseAttrs()
	if err != nil {
		t.Fatal(err)
	}
	if k, err := attrs.WireGuardPublicKey(); err != nil || keyfile.Key(k) == oldPub || keyfile.Key(k) != n1.b.PublicKey() {
		t.Fatalf("lease attributes after rotation: %s, %v", attrs.BackendData, err)
	}
	n1.lease.Attrs = attrs
	n2.b.Apply(nil, []subnet.Event{{Type: subnet.EventAdded, Lease: n1.lease}})
	if out, err := bed.Hosts[0].NS.Run(ctx, "ping", "-c", "3", "-i", "0.2", "-w", "15", "10.244.2.0"); err != nil {
		t.Fatalf("ping after rotation: %v\n%s", err, out)
	}
	// A loosened key file is refused; the running key stays.
	if err := os.Chmod(n1.b.keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	cur := n1.b.PublicKey()
	if _, err := keyfile.Rotate(n1.b.keyPath + ".other"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(n1.b.keyPath+".other", n1.b.keyPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(n1.b.keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	n1.b.checkKey()
	if n1.b.PublicKey() != cur {
		t.Error("a key file readable by others was taken")
	}

	// The lease goes: the peer goes at once, nothing passes.
	n1.b.Apply(nil, []subnet.Event{{Type: subnet.EventRemoved, Lease: n2.lease}})
	if out, err := bed.Hosts[0].NS.Run(ctx, "ping", "-c", "1", "-W", "1", "10.244.2.0"); err == nil {
		t.Errorf("ping passed after the peer's lease went:\n%s", out)
	}
	// Deleting the device ends Run with ErrDeviceLost.
	if out, err := bed.Hosts[1].NS.Run(ctx, "ip", "link", "del", n2.dev); err != nil {
		t.Fatalf("ip link del: %v\n%s", err, out)
	}
	select {
	case err := <-runErr:
		if !errors.Is(err, backend.ErrDeviceLost) {
			t.Errorf("Run after the device was deleted: %v, want ErrDeviceLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Run did not end after the device was deleted")
	}
}

// pingOver pings dst from n1's host until it answers (up to 4 tries),
// rebinding both devices' sockets in their namespaces before each try (see
// TestTwoDevicesTalk).
func pingOver(ctx context.Context, t *testing.T, bed *testbed.Bed, n1, n2 *testNode, dst string) (string, error) {
	t.Helper()
	var out string
	var err error
	for try := range 4 {
		time.Sleep(time.Duration(1500*(try+1)) * time.Millisecond)
		for _, n := range []*testNode{n1, n2} {
			if err := ns.WithNetNSPath(n.host.NS.Path(), func(ns.NetNS) error { return n.b.run.dev.BindUpdate() }); err != nil {
				t.Fatalf("rebind in %s: %v", n.host.NS.Name, err)
			}
		}
		if out, err = n1.host.NS.Run(ctx, "ping", "-c", "3", "-i", "0.2", "-w", "8", dst); err == nil {
			return out, nil
		}
	}
	return out, err
}

// Issue 21 on wireguard, with real devices: a dual-stack network over an
// IPv4 underlay. Each device gets both families' addresses and routes;
// each peer's allowed IPs are both its subnets, so IPv4 and IPv6 pass;
// an IPv6 source outside the peer's IPv6 subnet does not.
func TestTwoDevicesDualStack(t *testing.T) {
	const config = `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:244::/48","Backend":{"Type":"wireguard"}}`
	bed := testbed.ForTest(t, "wgds", 2)
	n1 := startNodeWith(t, bed.Hosts[0], config, "10.244.1.0/24", "fd00:244:0:1::/64")
	n2 := startNodeWith(t, bed.Hosts[1], config, "10.244.2.0/24", "fd00:244:0:2::/64")
	n1.b.Apply([]subnet.Lease{n2.lease}, nil)
	n2.b.Apply([]subnet.Lease{n1.lease}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if out, err := pingOver(ctx, t, bed, n1, n2, "fd00:244:0:2::"); err != nil {
		t.Fatalf("ping6 over WireGuard: %v\n%s", err, out)
	}
	if out, err := n1.host.NS.Run(ctx, "ping", "-c", "2", "-i", "0.2", "-w", "8", "10.244.2.0"); err != nil {
		t.Fatalf("ping over WireGuard, dual stack: %v\n%s", err, out)
	}
	show, err := exec.CommandContext(ctx, "wg", "show", n1.dev, "allowed-ips").CombinedOutput()
	if err != nil || !strings.Contains(string(show), "10.244.2.0/24") || !strings.Contains(string(show), "fd00:244:0:2::/64") {
		t.Errorf("wg show allowed-ips: %v\n%s", err, show)
	}
	if p := n1.b.Peers(); len(p) != 1 || p[0].IPv6Subnet.String() != "fd00:244:0:2::/64" {
		t.Errorf("peers %+v", p)
	}
	// An IPv6 source outside node 1's IPv6 subnet: node 2 drops it.
	before := n2.b.evs.snapshot()[EventDisallowedSource]
	if out, err := n1.host.NS.Run(ctx, "ip", "-6", "addr", "add", "fd00:244:0:9::1/128", "dev", n1.dev, "nodad"); err != nil {
		t.Fatalf("add a foreign source: %v\n%s", err, out)
	}
	if out, err := n1.host.NS.Run(ctx, "ping", "-c", "2", "-i", "0.2", "-w", "3", "-I", "fd00:244:0:9::1", "fd00:244:0:2::"); err == nil {
		t.Errorf("ping6 from a source outside the peer's subnet passed:\n%s", out)
	}
	if after := n2.b.evs.snapshot()[EventDisallowedSource]; after <= before {
		t.Errorf("disallowed_inner_source %d -> %d: the foreign source was not counted", before, after)
	}
}
