//go:build !unit

package testbed

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func pingAll(t *testing.T, b *Bed) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, src := range b.Hosts {
		for _, dst := range b.Hosts {
			if src == dst {
				continue
			}
			if _, err := src.NS.Run(ctx, "ping", "-c", "1", "-W", "2", dst.IP.String()); err != nil {
				t.Errorf("%s -> %s: %v", src.IP, dst.IP, err)
			}
		}
	}
}

func namespaces(b *Bed) []*NS {
	var all []*NS
	for _, h := range b.Hosts {
		all = append(all, h.NS)
	}
	for _, ns := range []*NS{b.Switch, b.Router} {
		if ns != nil {
			all = append(all, ns)
		}
	}
	return all
}

func assertGone(t *testing.T, all []*NS) {
	t.Helper()
	for _, ns := range all {
		if _, err := os.Stat(ns.Path()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still exists after Close (stat: %v)", ns.Name, err)
		}
	}
}

func TestTwoHostsPingOverVeth(t *testing.T) {
	b := ForTest(t, "wt", 2)
	if b.Switch != nil {
		t.Errorf("two-host bed has a switch namespace %s", b.Switch.Name)
	}
	for i, h := range b.Hosts {
		want := "192.0.2." + string(rune('1'+i))
		if h.IP.String() != want || h.Dev != UnderlayDev || h.MTU != 1500 {
			t.Errorf("host %d = %s %s mtu %d, want %s %s mtu 1500", i+1, h.Dev, h.IP, h.MTU, want, UnderlayDev)
		}
		out, err := h.NS.Run(context.Background(), "ip", "-o", "link", "show", h.Dev)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "veth") && !strings.Contains(out, "@") {
			t.Errorf("host %d: %s is not a veth: %s", i+1, h.Dev, out)
		}
	}
	pingAll(t, b)
}

// Two hosts share 192.0.2.0/24 with a router; the third sits behind it on
// 198.51.100.0/24: every host reaches every other, the third one hop away.
func TestRoutedBed(t *testing.T) {
	b := ForTestWith(t, "wt", 3, Options{Remote: 1})
	if b.Router == nil || b.Switch == nil {
		t.Fatal("routed bed without router or switch namespace")
	}
	want := []string{"192.0.2.1 via 192.0.2.254", "192.0.2.2 via 192.0.2.254", "198.51.100.3 via 198.51.100.254"}
	for i, h := range b.Hosts {
		if got := h.IP.String() + " via " + h.Gateway.String(); got != want[i] {
			t.Errorf("host %d: %s, want %s", i+1, got, want[i])
		}
	}
	pingAll(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range []struct {
		src, dst int
		ttl      string
	}{{0, 1, "ttl=64"}, {0, 2, "ttl=63"}, {2, 1, "ttl=63"}} {
		out, err := b.Hosts[c.src].NS.Run(ctx, "ping", "-c", "1", "-W", "2", b.Hosts[c.dst].IP.String())
		if err != nil || !strings.Contains(out, c.ttl) {
			t.Errorf("host %d -> host %d: want %s: %v\n%s", c.src+1, c.dst+1, c.ttl, err, out)
		}
	}
	all := namespaces(b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, all)
	if _, err := NewBed("wt", 2, Options{Remote: 2}); err == nil {
		t.Error("a bed with every host remote was accepted")
	}
}

func TestThreeHostsPingOverBridge(t *testing.T) {
	b := ForTest(t, "wt", 3)
	if b.Switch == nil {
		t.Fatal("three-host bed has no switch namespace")
	}
	out, err := b.Switch.Run(context.Background(), "ip", "-o", "link", "show", "master", "br0")
	if err != nil {
		t.Fatal(err)
	}
	// Count the ports only: ip also prints "Peer netns reference is
	// invalid" on stderr when another test deletes a namespace meanwhile.
	if n := strings.Count(out, " master br0 "); n != 3 {
		t.Errorf("bridge has %d ports, want 3:\n%s", n, out)
	}
	pingAll(t, b)
}

func TestMTUOption(t *testing.T) {
	if err := CheckRoot(); err != nil {
		t.Fatal(err)
	}
	b, err := NewBed("wt", 2, Options{MTU: 9000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	out, err := b.Hosts[1].NS.Run(context.Background(), "ip", "-o", "link", "show", b.Hosts[1].Dev)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "mtu 9000") {
		t.Errorf("want mtu 9000: %s", out)
	}
}

func TestCloseRemovesNamespacesAndProcesses(t *testing.T) {
	if err := CheckRoot(); err != nil {
		t.Fatal(err)
	}
	b, err := NewBed("wt", 3, Options{})
	if err != nil {
		t.Fatal(err)
	}
	all := namespaces(b)
	t.Cleanup(func() { b.Close() })
	log := filepath.Join(t.TempDir(), "sleep.log")
	proc, err := b.Start(b.Hosts[0], log, "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	// A stray process the bed did not start: Close must kill it too.
	stray := b.Hosts[1].NS.Command(context.Background(), "sleep", "600")
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	strayDone := make(chan error, 1)
	go func() { strayDone <- stray.Wait() }()
	err = WaitFor(context.Background(), 10*time.Millisecond, func() error {
		pids, err := b.Hosts[1].NS.Pids()
		if err == nil && len(pids) == 0 {
			err = errors.New("stray sleep not inside yet")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !proc.Exited() {
		t.Error("process started with Start still runs after Close")
	}
	select {
	case <-strayDone:
	case <-time.After(5 * time.Second):
		t.Error("stray process still runs after Close")
	}
	assertGone(t, all)
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := b.Start(b.Hosts[0], log, "true"); err == nil {
		t.Error("Start on a closed bed succeeded")
	}
}

func TestProcSignalWaitAndLog(t *testing.T) {
	b := ForTest(t, "wt", 2)
	dir := t.TempDir()
	echo, err := b.Start(b.Hosts[0], filepath.Join(dir, "echo.log"), "sh", "-c", "echo hello; ip -o -4 addr show dev eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := echo.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(echo.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "hello") || !strings.Contains(string(data), "192.0.2.1/24") {
		t.Errorf("log lacks output or namespace address: %q", data)
	}

	sleeper, err := b.Start(b.Hosts[1], filepath.Join(dir, "sleep.log"), "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	if err := sleeper.Wait(50 * time.Millisecond); !errors.Is(err, ErrWaitTimeout) {
		t.Fatalf("Wait on a running process = %v, want ErrWaitTimeout", err)
	}
	if err := sleeper.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := sleeper.Wait(5 * time.Second); err == nil || errors.Is(err, ErrWaitTimeout) {
		t.Fatalf("Wait after SIGTERM = %v, want the exit error", err)
	}
	killed, err := b.Start(b.Hosts[1], filepath.Join(dir, "kill.log"), "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	killed.Kill()
	if !killed.Exited() {
		t.Error("Kill returned before the process exited")
	}
}

func TestNSDeleteKillsProcessesAndIsIdempotent(t *testing.T) {
	if err := CheckRoot(); err != nil {
		t.Fatal(err)
	}
	ns, err := NewNS("wt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	if !strings.HasPrefix(ns.Name, "wt") || len(ns.Name) > 15 {
		t.Errorf("name %q: want prefix wt and at most 15 characters", ns.Name)
	}
	out, err := ns.Run(context.Background(), "ip", "-o", "link", "show", "lo")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "UP") {
		t.Errorf("lo is not up: %s", out)
	}
	cmd := ns.Command(context.Background(), "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Delete kills what is inside; wait until sleep got there.
	err = WaitFor(context.Background(), 10*time.Millisecond, func() error {
		pids, err := ns.Pids()
		if err == nil && len(pids) == 0 {
			err = errors.New("sleep not inside yet")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Delete(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("process inside survived Delete")
	}
	assertGone(t, []*NS{ns})
	if err := ns.Delete(); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

func TestRunErrorIncludesOutput(t *testing.T) {
	if err := CheckRoot(); err != nil {
		t.Fatal(err)
	}
	ns, err := NewNS("wt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	_, err = ns.Run(context.Background(), "sh", "-c", "echo marker-output >&2; exit 3")
	if err == nil || !strings.Contains(err.Error(), "marker-output") {
		t.Errorf("Run error = %v, want it to include the output", err)
	}
}

func TestNSDialContextReachesTheNamespacesLoopback(t *testing.T) {
	if err := CheckRoot(); err != nil {
		t.Fatal(err)
	}
	ns, err := NewNS("wt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	srv, err := ServeEcho(ns.Path(), netip.MustParseAddr("127.0.0.1"), []uint16{7})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := ns.DialContext(ctx, "tcp", "127.0.0.1:7")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("weft\n")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "weft\n" {
		t.Fatalf("echo through the namespace's loopback: %q, %v", got, err)
	}
	// A refused dial says in which namespace it was made.
	if _, err := ns.DialContext(ctx, "tcp", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), ns.Name) {
		t.Errorf("dial to a closed port: err = %v, want an error naming %s", err, ns.Name)
	}
}
