//go:build !unit

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cnins "github.com/containernetworking/plugins/pkg/ns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// vxlanConfig is the config of flannel's own documentation.
const vxlanConfig = `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`

// vxlanLease is a lease value with vxlan's BackendData.
type vxlanLease struct {
	PublicIP    string
	BackendType string
	BackendData struct {
		VNI     int
		VtepMAC string
	}
}

// leasesAt reads every lease under prefix (etcd reached from host h).
func leasesAt(t *testing.T, h *testbed.Host, endpoint, prefix string) map[string]vxlanLease {
	t.Helper()
	cli := etcdClientIn(t, h.NS, endpoint)
	resp, err := cli.Get(ctxFor(t, 10*time.Second), prefix+"/subnets/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]vxlanLease{}
	for _, kv := range resp.Kvs {
		var l vxlanLease
		if err := json.Unmarshal(kv.Value, &l); err != nil {
			t.Fatalf("lease %s = %s: %v", kv.Key, kv.Value, err)
		}
		out[string(kv.Key)] = l
	}
	return out
}

// checkVXLANDevice checks that host h has flannel.1 with VNI 1 and port
// 8472 and returns `ip -d link` of it.
func checkVXLANDevice(t *testing.T, h *testbed.Host) string {
	t.Helper()
	out := runIn(t, ctxFor(t, 10*time.Second), h.NS, "ip", "-d", "link", "show", "flannel.1")
	for _, w := range []string{"vxlan id 1 ", "dstport 8472", "local " + h.IP.String()} {
		if !strings.Contains(out, w) {
			t.Errorf("%s: flannel.1 lacks %q:\n%s", h.NS.Name, w, out)
		}
	}
	return out
}

// Two weft hosts with flannel's vxlan config: containers talk through the
// kernel's VXLAN device flannel.1 (VNI 1, port 8472), each lease has a
// VtepMAC (the device's), and weft's own UDP data path is not there (no
// weft0, nothing on 8285, its counters absent).
func TestVXLANTwoWeftHosts(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{NetworkConfig: vxlanConfig})
	a, b := addContainer(t, c.Nodes[0], "wva"), addContainer(t, c.Nodes[1], "wvb")
	ctx := ctxFor(t, time.Minute)
	for _, p := range [][2]*cluster.Container{{a, b}, {b, a}} {
		if out, err := p[0].Ping(ctx, p[1].IP, 3); err != nil {
			t.Fatalf("%s -> %s over vxlan: %v\n%s", p[0].IP, p[1].IP, err, out)
		}
	}
	leases := leasesAt(t, c.Nodes[0].Host, c.EtcdEndpoint(), "/weft/network")
	if len(leases) != 2 {
		t.Fatalf("leases %v", leases)
	}
	for _, n := range c.Nodes {
		link := checkVXLANDevice(t, n.Host)
		var mine *vxlanLease
		for _, l := range leases {
			if l.PublicIP == n.Host.IP.String() {
				mine = &l
			}
		}
		if mine == nil || mine.BackendType != "vxlan" || mine.BackendData.VNI != 1 || mine.BackendData.VtepMAC == "" ||
			!strings.Contains(link, "link/ether "+mine.BackendData.VtepMAC) {
			t.Errorf("node %d: lease %+v does not publish flannel.1's MAC:\n%s", n.Index+1, mine, link)
		}
		if out, err := n.Host.NS.Run(ctx, "ip", "link", "show", "weft0"); err == nil {
			t.Errorf("node %d: weft's TUN exists with the vxlan backend:\n%s", n.Index+1, out)
		}
		if out := runIn(t, ctx, n.Host.NS, "ss", "-Hulnp"); strings.Contains(out, ":8285") {
			t.Errorf("node %d: something listens on weft's port 8285:\n%s", n.Index+1, out)
		}
		st, err := n.Status(ctx)
		if err != nil || len(st.Peers) != 1 || st.Peers[0].Mode != "vxlan" {
			t.Errorf("node %d: /status peers %+v (%v), want one vxlan peer", n.Index+1, st.Peers, err)
		}
		env, err := n.Subnet()
		if err != nil || env.MTU != n.Host.MTU-50 {
			t.Errorf("node %d: container MTU %d (%v), want %d (VXLAN's 50 bytes)", n.Index+1, env.MTU, err, n.Host.MTU-50)
		}
		m := metrics(t, n)
		if got := counter(m, "weft_packets_total", "tx"); got > 0 {
			t.Errorf("node %d: weft's UDP data path sent %v packets", n.Index+1, got)
		}
	}

	// A peer's route deleted by hand comes back within the check interval.
	peerSubnet := nodeSubnet(t, c.Nodes[1])
	runIn(t, ctx, c.Nodes[0].Host.NS, "ip", "route", "del", peerSubnet.String())
	err := testbed.WaitFor(ctxFor(t, 10*time.Second), 200*time.Millisecond, func() error {
		out := runIn(t, ctx, c.Nodes[0].Host.NS, "ip", "route", "show", peerSubnet.String())
		if want := fmt.Sprintf("via %s dev flannel.1 onlink", peerSubnet.Addr()); !strings.Contains(out, want) {
			return fmt.Errorf("route %q, want %q", out, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The seed config {"Type":"vxlan","Directrouting":true} (flannel's key as
// many guides spell it): a peer on the same L2 is a plain route, and
// containers talk over it.
func TestVXLANDirectRouting(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{NetworkConfig: `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","Directrouting":true}}`})
	a, b := addContainer(t, c.Nodes[0], "wda"), addContainer(t, c.Nodes[1], "wdb")
	ctx := ctxFor(t, time.Minute)
	if out, err := a.Ping(ctx, b.IP, 3); err != nil {
		t.Fatalf("ping over a direct route: %v\n%s", err, out)
	}
	for i, n := range c.Nodes {
		other := c.Nodes[1-i]
		sn := nodeSubnet(t, other)
		out := runIn(t, ctx, n.Host.NS, "ip", "route", "show", sn.Masked().String())
		if want := fmt.Sprintf("via %s dev %s", other.Host.IP, n.Host.Dev); !strings.Contains(out, want) {
			t.Errorf("node %d: route to %s is %q, want %q", n.Index+1, sn, out, want)
		}
		st, err := n.Status(ctx)
		if err != nil || len(st.Peers) != 1 || st.Peers[0].Mode != "direct" {
			t.Errorf("node %d: peers %+v (%v), want one direct", n.Index+1, st.Peers, err)
		}
		checkVXLANDevice(t, n.Host)
	}
}

// vxlanFrame is an outer IPv4/UDP packet from src to dst:port carrying a
// VXLAN frame (VNI vni) for the VTEP MAC dstMAC whose inner packet is UDP
// from innerSrc to innerDst:innerPort.
func vxlanFrame(src, dst netip.Addr, port uint16, vni uint32, dstMAC []byte, innerSrc, innerDst netip.Addr, innerPort uint16) []byte {
	hdr := []byte{0x08, 0, 0, 0, byte(vni >> 16), byte(vni >> 8), byte(vni), 0}
	eth := append(append(append([]byte{}, dstMAC...), 0x0a, 0x58, 0xde, 0xad, 0xbe, 0xef), 0x08, 0x00)
	payload := append(append(hdr, eth...), ipv4UDP(innerSrc, innerDst, innerPort, []byte("injected"))...)
	return ipv4UDP(src, dst, port, payload)
}

// A container must not inject VXLAN frames: the container guard drops
// UDP from the bridge to the VXLAN port (8472) on its host and towards
// other nodes, and counts it. Control: the same frame sent by the host
// itself is delivered (so only its origin stops the forgery).
func TestVXLANContainerCannotInject(t *testing.T) {
	const count = 50
	c := newCluster(t, 2, cluster.Options{NetworkConfig: vxlanConfig})
	h1, h2 := c.Nodes[0], c.Nodes[1]
	attacker := addContainer(t, h1, "wvx")
	victim := addContainer(t, h2, "wvv")
	ctx := ctxFor(t, time.Minute)
	macOut := strings.TrimSpace(runIn(t, ctx, h2.Host.NS, "cat", "/sys/class/net/flannel.1/address"))
	mac, err := net.ParseMAC(macOut)
	if err != nil {
		t.Fatal(err)
	}
	const controlPort, attackPort = 9998, 9999
	control := startUDPCount(t, victim.NS, netip.AddrPortFrom(victim.IP, controlPort), 10)
	attack := startUDPCount(t, victim.NS, netip.AddrPortFrom(victim.IP, attackPort), 10)
	before := metrics(t, h1)
	rawSendIn(t, h1.Host.NS, count, vxlanFrame(h1.Host.IP, h2.Host.IP, 8472, 1, mac, attacker.IP, victim.IP, controlPort))
	gw := nodeSubnet(t, h1).Addr().Next()
	rawSendIn(t, attacker.NS, count,
		vxlanFrame(attacker.IP, h2.Host.IP, 8472, 1, mac, attacker.IP, victim.IP, attackPort),
		vxlanFrame(attacker.IP, gw, 8472, 1, mac, attacker.IP, victim.IP, attackPort))
	gotControl, gotAttack := control(), attack()
	t.Logf("victim received: control %d, injected %d", gotControl, gotAttack)
	if gotAttack != 0 {
		t.Errorf("%d VXLAN frames injected by a container were delivered", gotAttack)
	}
	if gotControl == 0 {
		t.Errorf("control: the host's own frames were not delivered: the test proves nothing")
	}
	after := metrics(t, h1)
	if d := guardDrops(after, "bridge_to_weft_port") - guardDrops(before, "bridge_to_weft_port"); d < 2*count {
		t.Errorf("guard counted %v drops to the VXLAN port, want at least %d", d, 2*count)
	}
}

// This node's host cannot run the vxlan backend: the VXLAN port held by
// another socket, a device named flannel.1 that is not VXLAN (left alone).
// weftd says why and exits 78, without a half-configured network.
func TestVXLANHostConflictsExit78(t *testing.T) {
	for name, setup := range map[string]func(t *testing.T, h *testbed.Host){
		"port held": func(t *testing.T, h *testbed.Host) {
			var conn *net.UDPConn
			if err := cnins.WithNetNSPath(h.NS.Path(), func(cnins.NetNS) error {
				var err error
				conn, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 8472})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
		},
		"not a vxlan device": func(t *testing.T, h *testbed.Host) {
			runIn(t, ctxFor(t, 10*time.Second), h.NS, "ip", "link", "add", "flannel.1", "type", "bridge")
		},
	} {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			bed := testbed.ForTest(t, "wx", 2)
			h := bed.Hosts[0]
			setup(t, h)
			dir := t.TempDir()
			etcd := "http://" + h.IP.String() + ":2379"
			p, err := bed.Start(h, filepath.Join(dir, "weftd.log"), filepath.Join(binDir, "weftd"),
				"--healthz-port", "0", "--iface", h.Dev, "--subnet-file", filepath.Join(dir, "subnet.env"),
				"--cni-socket", filepath.Join(dir, "cni.sock"), "--endpoints-file", filepath.Join(dir, "endpoints.json"),
				"--embedded-etcd-dir", filepath.Join(dir, "etcd"), "--embedded-etcd-listen", etcd, "--network-config", vxlanConfig)
			if err != nil {
				t.Fatal(err)
			}
			if code := exitStatus(t, p, 60*time.Second); code != 78 {
				t.Fatalf("exit code %d, want 78\n%s", code, tailFile(p.LogPath))
			}
			log := tailFile(p.LogPath)
			if want := map[string]string{"port held": "held by another socket", "not a vxlan device": "not a VXLAN device"}[name]; !strings.Contains(log, want) {
				t.Fatalf("log does not say %q:\n%s", want, log)
			}
			if name == "not a vxlan device" {
				if out := runIn(t, ctxFor(t, 10*time.Second), h.NS, "ip", "-d", "link", "show", "flannel.1"); !strings.Contains(out, "bridge") {
					t.Fatalf("the bridge named flannel.1 was changed:\n%s", out)
				}
			}
		})
	}
}
