//go:build !unit

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed/cluster"
)

// startWeftdWith runs, next to whatever runs on n's host, one more weftd with
// n's command line plus extra (later flags win) and returns its exit error
// once it exited (nil = status 0) and its log. It fails the test when that
// weftd is still running after a generous deadline.
func startWeftdWith(t *testing.T, c *cluster.Cluster, n *cluster.Node, name string, extra ...string) (log string, err error) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	args := append([]string{"NOTIFY_SOCKET=", filepath.Join(binDir, "weftd")}, n.Args()...)
	p, serr := c.Bed.Start(n.Host, logPath, "env", append(args, extra...)...)
	if serr != nil {
		t.Fatal(serr)
	}
	err = p.Wait(60 * time.Second)
	log = tailOf(logPath)
	if err != nil && strings.Contains(err.Error(), "still running") {
		p.Kill()
		t.Fatalf("%s: weftd still running after 60 s, want it to refuse at once; log:\n%s", name, log)
	}
	return log, err
}

func tailOf(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// linkLine is `ip -o -d link show name` on n's host ("" when absent).
func linkLine(t *testing.T, n *cluster.Node, name string) string {
	t.Helper()
	out, err := n.Host.NS.Run(ctxFor(t, 10*time.Second), "ip", "-o", "link", "show", name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// Issue 11 item 2: `ip link del weft0` (or setting it down) under a running
// weftd must not leave a daemon that says ready and never stops: weftd exits
// non-zero (systemd restarts it) and the restart forwards again; with one
// queue and with a multi-queue TUN (--queues 2 and 4); and with the wireguard
// backend (issue 19), whose wireguard-go device, left alone, would close its
// socket when the TUN goes down and sit there not forwarding.
func TestTUNRemovedExitsNonZero(t *testing.T) {
	for _, queues := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("queues=%d", queues), func(t *testing.T) { tunRemovedExitsNonZero(t, cluster.Options{Queues: queues}) })
	}
	t.Run("wireguard", func(t *testing.T) { tunRemovedExitsNonZero(t, cluster.Options{NetworkConfig: wireGuardConfig}) })
}

func tunRemovedExitsNonZero(t *testing.T, opts cluster.Options) {
	c := newCluster(t, 2, opts)
	if opts.Queues > 0 {
		requireQueues(t, c, opts.Queues)
	}
	a, b := c.Nodes[0], c.Nodes[1]
	ctx := ctxFor(t, 4*time.Minute)
	for _, how := range [][]string{
		{"link", "del", "weft0"},
		{"link", "set", "weft0", "down"},
	} {
		runIn(t, ctx, b.Host.NS, "ip", how...)
		err := b.WaitExit(60 * time.Second)
		if err == nil {
			t.Fatalf("ip %s: weftd exited 0, want non-zero", strings.Join(how, " "))
		}
		if strings.Contains(err.Error(), "still running") {
			t.Fatalf("ip %s: weftd still running 60 s later (stuck)", strings.Join(how, " "))
		}
		if log := b.Log(30); !strings.Contains(log, "TUN device removed or down") {
			t.Errorf("ip %s: weftd did not say why it stopped:\n%s", strings.Join(how, " "), log)
		}
		// What systemd's Restart= does.
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		if err := b.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		waitPeers(t, c, 1)
		runIn(t, ctx, a.Host.NS, "ping", "-c", "3", "-i", "0.2", "-W", "5", tunAddr(t, b).String())
	}
	// SIGTERM still completes (and cleanly) after all that.
	if err := b.Stop(syscall.SIGTERM, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

// Issue 11 item 3: a second weftd in the same namespace exits with a clear
// error before it touches anything; the first keeps its TUN and forwards.
func TestSecondWeftdRefused(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{})
	a, b := c.Nodes[0], c.Nodes[1]
	ctx := ctxFor(t, 2*time.Minute)
	before := linkLine(t, b, "weft0")
	log, err := startWeftdWith(t, c, b, "second")
	if err == nil {
		t.Fatalf("second weftd exited 0; log:\n%s", log)
	}
	if !strings.Contains(log, "another weftd") {
		t.Errorf("second weftd's error does not name the cause:\n%s", log)
	}
	if after := linkLine(t, b, "weft0"); after == "" || strings.Fields(after)[0] != strings.Fields(before)[0] {
		t.Fatalf("weft0 of the first weftd changed:\nbefore %s\nafter  %s", before, after)
	}
	code, body, gerr := b.Get(ctx, "/readyz")
	if gerr != nil || code != 200 {
		t.Fatalf("first weftd /readyz: %d %s %v", code, body, gerr)
	}
	runIn(t, ctx, a.Host.NS, "ping", "-c", "3", "-i", "0.2", "-W", "5", tunAddr(t, b).String())
}

// Issue 11 item 3: weftd must not delete a link of its TUN's name that is not
// a stale TUN: the containers' bridge, the underlay. It refuses to start; the
// link and the containers behind it stay; a normal start then works.
func TestTUNNameOfForeignLinkRefused(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{})
	a, b := c.Nodes[0], c.Nodes[1]
	ctx := ctxFor(t, 3*time.Minute)
	ctr := addContainer(t, b, "wfh")
	if err := b.Stop(syscall.SIGTERM, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"weftbr0", b.Host.Dev} {
		before := linkLine(t, b, name)
		if before == "" {
			t.Fatalf("no link %s on host 2", name)
		}
		log, err := startWeftdWith(t, c, b, "tun-"+name, "--tun-name", name)
		if err == nil {
			t.Fatalf("weftd --tun-name %s exited 0; log:\n%s", name, log)
		}
		if !strings.Contains(err.Error(), "exit status 78") {
			t.Errorf("weftd --tun-name %s: %v, want exit status 78 (configuration: systemd does not restart)", name, err)
		}
		if !strings.Contains(log, "refusing to replace link "+name) {
			t.Errorf("weftd --tun-name %s: no clear refusal in the log:\n%s", name, log)
		}
		if after := linkLine(t, b, name); after != before {
			t.Fatalf("link %s changed:\nbefore %s\nafter  %s", name, before, after)
		}
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, c, 1)
	runIn(t, ctx, a.Host.NS, "ping", "-c", "3", "-i", "0.2", "-W", "5", ctr.IP.String())
}
