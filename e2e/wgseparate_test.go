//go:build !unit

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// A flannel wireguard node in Mode separate (flannel's default) on a
// dual-stack network runs two devices with one key: flannel-wg on
// ListenPort for IPv4 (allowed IPs: each peer's IPv4 subnet) and
// flannel-wg-v6 on ListenPortV6 for IPv6 (each peer's IPv6 subnet, at
// [PublicIPv6]:<BackendV6Data's Port>), each configured from the peer's
// lease as flanneld v0.28.10 does. Host 2 is such a node, two
// hand-configured wireguard-go devices (a flanneld wireguard node cannot
// run here: no kernel module). weftd on host 1 runs one device; its lease
// has no BackendV6Data in this mode, so the IPv6 device is left without a
// weft peer (flanneld logs "failed to setup ipv6 peer"), and when host 2
// then sends IPv6 towards weft's containers, IPv4 between weft's container
// and host 2 keeps working both ways. Before, weft's BackendV6Data named
// its one port: the IPv6 device handshook with weft's device under the
// key of the IPv4 device, weft's endpoint for host 2 moved to it, and the
// IPv4 traffic weft sent afterwards was dropped there (not in its allowed
// IPs): the container's ping to host 2 failed.
func TestWireGuardSeparateModeFlannelPeer(t *testing.T) {
	bed := testbed.ForTestWith(t, "wgs", 2, testbed.Options{IPv6: true})
	c := newStoppedClusterOn(t, bed, cluster.Options{NetworkConfig: issue21Network("wireguard")})
	n1, h2 := c.Nodes[0], c.Nodes[1].Host
	startNodes(t, []*cluster.Node{n1})
	ctx := ctxFor(t, 2*time.Minute)
	env, err := n1.Subnet()
	if err != nil {
		t.Fatal(err)
	}
	cli := etcdClientIn(t, n1.Host.NS, c.EtcdEndpoint())
	resp, err := cli.Get(ctx, "/weft/network/subnets/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("weftd's lease: %v (%d keys)", err, len(resp.Kvs))
	}
	var attrs subnet.LeaseAttrs
	if err := json.Unmarshal(resp.Kvs[0].Value, &attrs); err != nil {
		t.Fatal(err)
	}
	var weftData struct{ PublicKey string }
	if err := json.Unmarshal(attrs.BackendData, &weftData); err != nil {
		t.Fatal(err)
	}
	if attrs.BackendV6Data != nil {
		t.Errorf("weftd's lease in Mode separate has BackendV6Data %s", attrs.BackendV6Data)
	}

	// Host 2: one key, two wireguard-go devices.
	priv, pub := wgKeyPair(t, ctx, h2.NS)
	sub4, sub6 := netip.MustParsePrefix("10.244.200.0/24"), netip.MustParsePrefix("fd10:244:0:c8::/64")
	startWG := func(dev string, port int, peer string) {
		t.Helper()
		startWireGuardGo(t, ctx, h2.NS, dev)
		conf := filepath.Join(t.TempDir(), dev+".conf")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf("[Interface]\nPrivateKey = %s\nListenPort = %d\n%s", priv, port, peer)), 0o600); err != nil {
			t.Fatal(err)
		}
		runIn(t, ctx, h2.NS, "wg", "setconf", dev, conf)
		runIn(t, ctx, h2.NS, "ip", "link", "set", dev, "up")
	}
	// Unique names: UAPI sockets are shared by all namespaces.
	suffix := strings.TrimPrefix(c.Nodes[1].WireGuardName, "wgt")
	dev4, dev6 := ("f4" + suffix)[:min(15, 2+len(suffix))], ("f6" + suffix)[:min(15, 2+len(suffix))]
	startWG(dev4, wireGuardPort, fmt.Sprintf("\n[Peer]\nPublicKey = %s\nEndpoint = %s:%d\nAllowedIPs = %s\n", weftData.PublicKey, n1.Host.IP, wireGuardPort, env.Subnet.Masked()))
	// flanneld's IPv6 device takes the peer's key and port from
	// BackendV6Data; without one it has no peer for weft.
	peer6 := ""
	if attrs.BackendV6Data != nil {
		var d struct {
			PublicKey string
			Port      int
		}
		if err := json.Unmarshal(attrs.BackendV6Data, &d); err != nil {
			t.Fatal(err)
		}
		peer6 = fmt.Sprintf("\n[Peer]\nPublicKey = %s\nEndpoint = [%s]:%d\nAllowedIPs = %s\n", d.PublicKey, n1.Host.IPv6, d.Port, env.IPv6Subnet.Masked())
	}
	startWG(dev6, 51821, peer6)
	runIn(t, ctx, h2.NS, "ip", "addr", "add", sub4.Addr().Next().String()+"/32", "dev", dev4)
	runIn(t, ctx, h2.NS, "ip", "route", "add", "10.244.0.0/16", "dev", dev4)
	runIn(t, ctx, h2.NS, "ip", "addr", "add", sub6.Addr().Next().String()+"/128", "dev", dev6, "nodad")
	runIn(t, ctx, h2.NS, "ip", "route", "add", "fd10:244::/56", "dev", dev6)

	// Its lease, as flanneld writes it in Mode separate.
	key := fmt.Sprintf("/weft/network/subnets/%s-%d&%s-%d", sub4.Addr(), sub4.Bits(), sub6.Addr(), sub6.Bits())
	value := fmt.Sprintf(`{"PublicIP":%q,"PublicIPv6":%q,"BackendType":"wireguard","BackendData":{"PublicKey":%q,"Port":%d},"BackendV6Data":{"PublicKey":%q,"Port":51821}}`,
		h2.IP, h2.IPv6, pub, wireGuardPort, pub)
	putLeaseAndWaitPeer(t, ctx, cli, n1, key, value, sub4)
	ctr := addContainer(t, n1, "wgs")
	runIn(t, ctx, h2.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", ctr.IP.String())
	if out, err := ctr.Ping(ctx, sub4.Addr().Next(), 2); err != nil {
		t.Fatalf("container -> host 2 over IPv4 before any IPv6: %v\n%s", err, out)
	}
	// Host 2 sends IPv6 towards weft's container (through its IPv6 device,
	// as a flannel container would).
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, _ = h2.NS.Run(pctx, "ping", "-6", "-c", "3", "-i", "0.3", "-W", "1", ctr.IPv6.String())
	cancel()
	time.Sleep(time.Second)
	if out, err := ctr.Ping(ctx, sub4.Addr().Next(), 3); err != nil {
		t.Errorf("container -> host 2 over IPv4 after host 2's IPv6 device sent: %v\n%s\nweftd's peer: %s", err, out,
			runIn(t, ctx, n1.Host.NS, "wg", "show", n1.WireGuardName, "endpoints"))
	}
	runIn(t, ctx, h2.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", ctr.IP.String())
}
