package overlay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/netip"
	"os/exec"
	"testing"
	"time"
)

// newLoneNode starts no loops: it creates one namespace with an Overlay in it
// (weft0 up, socket bound) and returns the node; the caller runs it.
func newLoneNode(t *testing.T) *node {
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
		o, err := New(Config{Network: testNetwork, Subnet: n.subnet, MTU: OverlayMTU(1500), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, table)
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
	n := newLoneNode(t)
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
	n := newLoneNode(t)
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
	n := newLoneNode(t)
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
