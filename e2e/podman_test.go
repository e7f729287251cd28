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

	"github.com/weftnet/weft/testbed/cluster"
)

// podmanNetwork is the shipped scripts/10-weft.conflist (CNI 1.0.0, weft
// with portmap chained) with node n's paths, and ipMasq off so that the
// test sees what crosses the overlay unmasqueraded.
func podmanNetwork(t *testing.T, n *cluster.Node, dataDir string) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../scripts/10-weft.conflist")
	if err != nil {
		t.Fatal(err)
	}
	var list map[string]any
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatalf("scripts/10-weft.conflist: %v", err)
	}
	weft := list["plugins"].([]any)[0].(map[string]any)
	weft["subnetFile"], weft["dataDir"], weft["daemonSocket"], weft["ipMasq"] = n.SubnetFile, dataDir, n.CNISocket, false
	delete(weft, "daemonURL")
	return list
}

func startPodman(t *testing.T, n *cluster.Node) *cluster.Podman {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := n.StartPodman(ctx)
	if err != nil {
		t.Fatalf("node %d: podman cannot run here: %v", n.Index+1, err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("node %d: podman cleanup: %v", n.Index+1, err)
		}
	})
	if err := p.AddNetwork("weft", podmanNetwork(t, n, filepath.Join(n.Dir, "podman-ipam"))); err != nil {
		t.Fatal(err)
	}
	return p
}

func podmanDo(t *testing.T, ctx context.Context, p *cluster.Podman, args ...string) string {
	t.Helper()
	out, err := p.Run(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Debian 12's podman 4.3 (CNI backend) with the weft plugin and Debian's
// portmap, on two weft hosts: containers reach each other, a published
// port is reachable from the other host (its root namespace and its
// containers) and from the container itself (hairpin), --ip and
// --mac-address are honoured, create/remove cycles leak no address, and GC
// of another network on the same bridge leaves podman's containers alone.
func TestPodman(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{})
	ctx := ctxFor(t, 10*time.Minute)
	pods := []*cluster.Podman{startPodman(t, c.Nodes[0]), startPodman(t, c.Nodes[1])}
	var ips []string
	for i, p := range pods {
		name := fmt.Sprintf("c%d", i+1)
		if _, err := p.RunDetached(ctx, "--name", name, "--network", "weft", cluster.PodmanImage, "sleep", "600"); err != nil {
			t.Fatal(err)
		}
		ip, err := p.IP(ctx, name, "weft")
		if err != nil {
			t.Fatal(err)
		}
		ips = append(ips, ip)
	}

	t.Run("containers on two hosts ping each other", func(t *testing.T) {
		podmanDo(t, ctx, pods[0], "exec", "c1", "ping", "-c", "2", "-W", "2", ips[1])
		podmanDo(t, ctx, pods[1], "exec", "c2", "ping", "-c", "2", "-W", "2", ips[0])
	})

	t.Run("published port via portmap", func(t *testing.T) {
		if _, err := pods[0].RunDetached(ctx, "--name", "web", "-p", "8080:80", "--network", "weft", cluster.PodmanImage,
			"httpd", "-f", "-p", "80", "-h", "/www"); err != nil {
			t.Fatal(err)
		}
		url := "http://" + c.Nodes[0].Host.IP.String() + ":8080/"
		// busybox wget's -T crashes Debian's busybox-static: each try is
		// bounded by its own context instead.
		get := func(what string, run func(ctx context.Context) (string, error)) {
			t.Helper()
			var out string
			var err error
			for range 10 { // httpd may take a moment to listen
				try, cancel := context.WithTimeout(ctx, 10*time.Second)
				out, err = run(try)
				cancel()
				if err == nil && out == cluster.PodmanPage {
					return
				}
				time.Sleep(500 * time.Millisecond)
			}
			t.Fatalf("%s: GET %s: %q, %v", what, url, out, err)
		}
		get("host 2's root namespace", func(ctx context.Context) (string, error) {
			return c.Nodes[1].Host.NS.Run(ctx, "busybox", "wget", "-q", "-O", "-", url)
		})
		get("a container on host 2 (ipMasq off)", func(ctx context.Context) (string, error) {
			return pods[1].Run(ctx, "exec", "c2", "wget", "-q", "-O", "-", url)
		})
		get("the container itself through its own hostPort (hairpin)", func(ctx context.Context) (string, error) {
			return pods[0].Run(ctx, "exec", "web", "wget", "-q", "-O", "-", url)
		})
	})

	t.Run("--ip and --mac-address honoured", func(t *testing.T) {
		env, err := c.Nodes[0].Subnet()
		if err != nil {
			t.Fatal(err)
		}
		want := env.Subnet.Masked().Addr().As4()
		want[3] = 200
		ip := netip.AddrFrom4(want).String()
		out := podmanDo(t, ctx, pods[0], "run", "--rm", "--network", "weft", "--ip", ip, "--mac-address", "02:42:0a:f4:00:c8",
			cluster.PodmanImage, "ip", "addr", "show", "eth0")
		if !strings.Contains(out, "inet "+ip+"/") || !strings.Contains(out, "02:42:0a:f4:00:c8") {
			t.Fatalf("podman run --ip %s --mac-address 02:42:0a:f4:00:c8: container has\n%s", ip, out)
		}
		// Asking for c1's address fails clearly and leaves c1 alone.
		out, err = pods[0].Run(ctx, "run", "--rm", "--network", "weft", "--ip", ips[0], cluster.PodmanImage, "true")
		if err == nil || !strings.Contains(out, "is held by container") {
			t.Fatalf("podman run --ip %s (taken by c1): err %v\n%s", ips[0], err, out)
		}
		podmanDo(t, ctx, pods[1], "exec", "c2", "ping", "-c", "1", "-W", "2", ips[0])
	})

	t.Run("network reload keeps the address", func(t *testing.T) {
		podmanDo(t, ctx, pods[0], "network", "reload", "c1")
		ip, err := pods[0].IP(ctx, "c1", "weft")
		if err != nil {
			t.Fatal(err)
		}
		if ip != ips[0] {
			t.Fatalf("after podman network reload c1 has %s, had %s", ip, ips[0])
		}
		podmanDo(t, ctx, pods[1], "exec", "c2", "ping", "-c", "2", "-W", "2", ips[0])
	})

	t.Run("second network holds the default route", func(t *testing.T) {
		// Debian's bridge + host-local on a private subnet, attached first
		// (podman attaches networks in name order): its default route wins,
		// and weft's overlay route still takes the container to host 2.
		side := map[string]any{"cniVersion": "1.0.0", "name": "aside", "plugins": []any{map[string]any{
			"type": "bridge", "bridge": "sidebr0", "isGateway": true, "isDefaultGateway": true,
			"ipam": map[string]any{"type": "host-local", "subnet": "198.51.100.0/24", "dataDir": filepath.Join(c.Nodes[0].Dir, "side-ipam")},
		}}}
		if err := pods[0].AddNetwork("aside", side); err != nil {
			t.Fatal(err)
		}
		out := podmanDo(t, ctx, pods[0], "run", "--rm", "--network", "aside", "--network", "weft", cluster.PodmanImage,
			"sh", "-c", "ip -4 route; ping -c 2 -W 2 "+ips[1])
		if !strings.Contains(out, "default via 198.51.100.1") || !strings.Contains(out, "10.244.0.0/16 via") {
			t.Fatalf("routes of a container on aside and weft:\n%s", out)
		}
	})

	t.Run("20 create/remove cycles leak no address", func(t *testing.T) {
		before := allocationFiles(t, filepath.Join(c.Nodes[1].Dir, "podman-ipam"))
		for i := range 20 {
			out := podmanDo(t, ctx, pods[1], "run", "--rm", "--network", "weft", cluster.PodmanImage, "ip", "-4", "-o", "addr", "show", "eth0")
			if !strings.Contains(out, "inet 10.244.") {
				t.Fatalf("cycle %d: container had no address:\n%s", i, out)
			}
		}
		if after := allocationFiles(t, filepath.Join(c.Nodes[1].Dir, "podman-ipam")); strings.Join(after, ",") != strings.Join(before, ",") {
			t.Fatalf("allocations before %v, after 20 cycles %v", before, after)
		}
	})

	t.Run("GC of another network leaves podman's containers", func(t *testing.T) {
		n := c.Nodes[1]
		dir := filepath.Join(n.Dir, "gc-net")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// GC is CNI 1.1.0; Debian's portmap does not know it, so weft alone.
		conf := map[string]any{"cniVersion": "1.1.0", "name": "weft-other", "plugins": []any{map[string]any{
			"type": "weft", "subnetFile": n.SubnetFile, "dataDir": filepath.Join(n.Dir, "other-ipam"), "daemonSocket": n.CNISocket}}}
		if err := writeJSON(filepath.Join(dir, "10-other.conflist"), conf); err != nil {
			t.Fatal(err)
		}
		tool, err := cluster.Cnitool()
		if err != nil {
			t.Fatal(err)
		}
		runIn(t, ctx, n.Host.NS, "env", "CNI_PATH="+binDir+":/usr/lib/cni", "NETCONFPATH="+dir, tool, "gc", "weft-other", "/var/run/netns/unused")
		podmanDo(t, ctx, pods[1], "exec", "c2", "ip", "link", "show", "eth0")
		podmanDo(t, ctx, pods[1], "exec", "c2", "ping", "-c", "1", "-W", "2", ips[0])
	})
}

// allocationFiles lists the address files of a host-local style store.
func allocationFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
