//go:build !unit

package overlay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// newLoneNode starts no loops: it creates one namespace with an Overlay in it
// (weft0 up, socket bound) and returns the node; the caller runs it.
func newLoneNode(t *testing.T, queues int) *node {
	t.Helper()
	return newLoneNodeMTU(t, queues, OverlayMTU(1500))
}

// newLoneNodeMTU is newLoneNode with weft0's MTU mtu.
func newLoneNodeMTU(t *testing.T, queues, mtu int) *node {
	t.Helper()
	requireIntegration(t)
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	n := &node{ns: "wtL" + hex.EncodeToString(rnd[:]), under: netip.MustParseAddr("192.0.2.1"), subnet: netip.MustParsePrefix("10.244.1.0/24")}
	mustRun(t, "ip", "netns", "add", n.ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.ns).Run() })
	mustRun(t, "ip", "-n", n.ns, "link", "set", "lo", "up")
	table, err := NewPeerTable(testNetwork, 24)
	if err != nil {
		t.Fatal(err)
	}
	n.do(t, func() error {
		o, err := New(Config{Network: testNetwork, Subnet: n.subnet, MTU: mtu, Queues: queues, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, table)
		n.overlay = o
		return err
	})
	t.Cleanup(func() { _ = n.overlay.Close() })
	return n
}

// runInBackground runs o.Run(ctx) and returns a channel with its result.
func runInBackground(ctx context.Context, o *Overlay) <-chan error {
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	return done
}

// waitRun waits (generously: the machine is shared) for Run to return.
func waitRun(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("Run did not return after %s", what)
		return nil
	}
}

// A TUN deleted under a running overlay (ip link del weft0) ends the TUN
// read; Run must return an error at once, not wait forever for the
// loop that already ended nor report a clean stop.
func TestRunReturnsErrorWhenDeviceRemoved(t *testing.T) {
	for _, queues := range []int{1, 2} {
		t.Run(fmt.Sprintf("queues=%d", queues), func(t *testing.T) { runReturnsErrorWhenDeviceRemoved(t, queues) })
	}
}

func runReturnsErrorWhenDeviceRemoved(t *testing.T, queues int) {
	n := newLoneNode(t, queues)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runInBackground(ctx, n.overlay)
	time.Sleep(100 * time.Millisecond) // let the loops reach their reads (not a timing assertion)
	mustRun(t, "ip", "-n", n.ns, "link", "del", "weft0")
	err := waitRun(t, done, "weft0 was deleted")
	if err == nil {
		t.Fatal("Run returned nil after its device was deleted while the context is live")
	}
	t.Logf("Run: %v", err)
}

// Closing the overlay under a running Run (the device and socket go away)
// also ends Run with an error while the context is live.
func TestRunReturnsErrorWhenClosedUnderIt(t *testing.T) {
	for _, queues := range []int{1, 2} {
		t.Run(fmt.Sprintf("queues=%d", queues), func(t *testing.T) { runReturnsErrorWhenClosedUnderIt(t, queues) })
	}
}

func runReturnsErrorWhenClosedUnderIt(t *testing.T, queues int) {
	n := newLoneNode(t, queues)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runInBackground(ctx, n.overlay)
	time.Sleep(100 * time.Millisecond)
	_ = n.overlay.Close()
	if err := waitRun(t, done, "Close"); err == nil {
		t.Fatal("Run returned nil after Close while the context is live")
	}
}

// Cancelling the context always ends Run with nil, also right after start.
func TestRunStopsOnCancel(t *testing.T) {
	for _, queues := range []int{1, 2} {
		t.Run(fmt.Sprintf("queues=%d", queues), func(t *testing.T) { runStopsOnCancel(t, queues) })
	}
}

func runStopsOnCancel(t *testing.T, queues int) {
	n := newLoneNode(t, queues)
	for i := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		done := runInBackground(ctx, n.overlay)
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		if err := waitRun(t, done, "cancel"); err != nil {
			t.Fatalf("run %d: Run after cancel = %v, want nil", i, err)
		}
	}
}

// TestNewRefusesForeignLink: New must not delete a link of its device's
// name that is not a stale TUN, and must replace a stale one.
func TestNewRefusesForeignLink(t *testing.T) {
	for _, queues := range []int{1, 2} {
		t.Run(fmt.Sprintf("queues=%d", queues), func(t *testing.T) { newRefusesForeignLink(t, queues) })
	}
}

func newRefusesForeignLink(t *testing.T, queues int) {
	requireIntegration(t)
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	n := &node{ns: "wtF" + hex.EncodeToString(rnd[:]), subnet: netip.MustParsePrefix("10.244.1.0/24")}
	mustRun(t, "ip", "netns", "add", n.ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.ns).Run() })
	newOverlay := func() (*Overlay, error) {
		table, err := NewPeerTable(testNetwork, 24)
		if err != nil {
			t.Fatal(err)
		}
		var o *Overlay
		var nerr error
		n.do(t, func() error {
			o, nerr = New(Config{DeviceName: "weftx", Network: testNetwork, Subnet: n.subnet, MTU: OverlayMTU(1500), Queues: queues, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, table)
			return nil
		})
		return o, nerr
	}
	linkType := func() string {
		out, err := exec.Command("ip", "-n", n.ns, "-d", "-o", "link", "show", "weftx").CombinedOutput()
		if err != nil {
			return "absent"
		}
		return string(out)
	}
	for _, kind := range [][]string{
		{"link", "add", "weftx", "type", "bridge"},
		{"link", "add", "weftx", "type", "veth", "peer", "name", "weftxp"},
		{"tuntap", "add", "weftx", "mode", "tap"},
	} {
		mustRun(t, "ip", append([]string{"-n", n.ns}, kind...)...)
		before := linkType()
		o, err := newOverlay()
		if err == nil {
			_ = o.Close()
			t.Fatalf("New over a %s link succeeded; link now: %s", kind[len(kind)-1], linkType())
		}
		if !strings.Contains(err.Error(), "refusing") {
			t.Errorf("New over a %s link: unclear error %v", kind[len(kind)-1], err)
		}
		if after := linkType(); after != before {
			t.Fatalf("the %s link changed:\nbefore %s\nafter  %s", kind[len(kind)-1], before, after)
		}
		mustRun(t, "ip", "-n", n.ns, "link", "del", "weftx")
	}

	// A TUN held by a running overlay is refused too.
	first, err := newOverlay()
	if err != nil {
		t.Fatal(err)
	}
	if o, err := newOverlay(); err == nil || !strings.Contains(err.Error(), "holds the TUN") {
		if o != nil {
			_ = o.Close()
		}
		t.Fatalf("New over a held TUN: %v", err)
	}
	_ = first.Close()

	// A persistent TUN nobody holds is stale (single- or multi-queue): replaced.
	for _, stale := range [][]string{{"mode", "tun"}, {"mode", "tun", "multi_queue"}} {
		mustRun(t, "ip", append([]string{"-n", n.ns, "tuntap", "add", "weftx"}, stale...)...)
		o, err := newOverlay()
		if err != nil {
			t.Fatalf("New over a stale TUN (%s): %v", strings.Join(stale, " "), err)
		}
		_ = o.Close()
		if lt := linkType(); lt != "absent" {
			t.Fatalf("the stale persistent TUN (%s) survived (it should have been replaced, then closed): %s", strings.Join(stale, " "), lt)
		}
	}
}

// weft0 below IPv6's minimum MTU (1280): the kernel keeps no IPv6 state
// for it, so asking for "no link-local address" fails with EAFNOSUPPORT;
// that must not fail New (a Backend.MTU of 1300 gives weft0 1268, and
// weftd exited "IPv6 address generation mode none ... address family not
// supported by protocol").
func TestNewBelowIPv6MinimumMTU(t *testing.T) {
	n := newLoneNodeMTU(t, 1, 1268)
	out, err := exec.Command("ip", "-n", n.ns, "-o", "link", "show", "dev", "weft0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), " mtu 1268 ") || !strings.Contains(string(out), ",UP") {
		t.Fatalf("weft0: %v\n%s", err, out)
	}
	if out, err := exec.Command("ip", "-n", n.ns, "-6", "addr", "show", "dev", "weft0").CombinedOutput(); err != nil || strings.Contains(string(out), "fe80") {
		t.Fatalf("weft0 has an IPv6 link-local address: %v\n%s", err, out)
	}
}
