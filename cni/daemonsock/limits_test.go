package daemonsock_test

import (
	"context"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftnet/weft/cni/daemonsock"
)

// countingListener counts the connections Serve accepted (it must get
// the *net.UnixConn itself, for the peer's credentials).
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

func serveCounting(t *testing.T, handle daemonsock.Handler) (string, *countingListener) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "weftd.sock")
	ln, err := daemonsock.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemonsock.Serve(ctx, cl, 10*time.Second, handle) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return path, cl
}

// flood sends size bytes without a newline on a new connection and
// returns the server's answer (read while the write goes on).
func flood(path string, payload []byte) (string, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	go conn.Write(payload) // may fail once the server closes
	answer, err := io.ReadAll(io.LimitReader(conn, 4096))
	return string(answer), err
}

// Issue 25 item 9: 400 connections each sending 1 MiB without a newline
// (weftd grew from 35 to 466 MB) cost the server at most MaxRequest bytes
// each, MaxInFlight at once, and each gets an answer naming the bound.
func TestRequestsAreBounded(t *testing.T) {
	path, cl := serveCounting(t, func(context.Context, daemonsock.Request) error { return nil })
	const conns, size = 400, 1 << 20
	payload := []byte(strings.Repeat("x", size)) // shared: the clients' memory is not what is measured
	var peak atomic.Uint64
	stopSampling := sampleHeap(&peak)
	base := heapInuse()
	var wg sync.WaitGroup
	var answered atomic.Int64
	errs := make(chan error, conns)
	for range conns {
		wg.Go(func() {
			answer, err := flood(path, payload)
			if err != nil {
				errs <- err
				return
			}
			if strings.Contains(answer, "larger than 65536 bytes") {
				answered.Add(1)
			} else {
				errs <- &answerError{answer}
			}
		})
	}
	wg.Wait()
	stopSampling()
	close(errs)
	for err := range errs {
		t.Error(err)
		break
	}
	if answered.Load() != conns {
		t.Fatalf("%d of %d connections answered with the bound", answered.Load(), conns)
	}
	// The whole flood may raise the heap by the requests in flight, not by
	// what was sent (the old server held up to 1 MiB a connection, 400 at
	// once: hundreds of MiB).
	if grew := int64(peak.Load()) - int64(base); grew > 32<<20 {
		t.Errorf("the heap grew by %d MiB during the flood (from %d MiB), want at most 32 MiB", grew>>20, base>>20)
	}
	t.Logf("heap %d MiB before, peak %d MiB during the flood", base>>20, peak.Load()>>20)

	// Connections that send nothing: Serve accepts MaxInFlight of them and
	// leaves the rest in the listen queue; each gives its place up after
	// the request timeout, and a real request is served then.
	before := cl.accepted.Load()
	idle := make([]net.Conn, daemonsock.MaxInFlight+10)
	for i := range idle {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle[i] = c
	}
	deadline := time.Now().Add(3 * time.Second)
	for cl.accepted.Load()-before < daemonsock.MaxInFlight && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if n := cl.accepted.Load() - before; n != daemonsock.MaxInFlight {
		t.Fatalf("%d idle connections accepted at once, want MaxInFlight (%d)", n, daemonsock.MaxInFlight)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := daemonsock.Send(ctx, path, daemonsock.Request{Op: daemonsock.OpDel, ContainerID: "c", IfName: "eth0"}); err != nil {
		t.Fatalf("a request behind %d idle connections: %v", len(idle), err)
	}
	t.Logf("served behind %d idle connections after %v", len(idle), time.Since(start).Round(time.Millisecond))
}

type answerError struct{ answer string }

func (e *answerError) Error() string { return "answer without the bound: " + e.answer }

// A request over MaxRequest is refused by Send before it is sent.
func TestSendRefusesOversizedRequest(t *testing.T) {
	labels := map[string]string{}
	for i := range 2000 {
		labels[strings.Repeat("k", 20)+string(rune('a'+i%26))+strings.Repeat("v", i%7)+string(rune(0x4e00+i))] = strings.Repeat("v", 40)
	}
	err := daemonsock.Send(context.Background(), filepath.Join(t.TempDir(), "none.sock"),
		daemonsock.Request{Op: daemonsock.OpAdd, IP: netip.MustParseAddr("10.244.1.2"), Namespace: "x", ContainerID: "c", IfName: "eth0", Labels: labels})
	if err == nil || !strings.Contains(err.Error(), "larger than 65536") {
		t.Fatalf("oversized request: %v", err)
	}
}

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// sampleHeap records the largest HeapInuse seen every 5 ms until stopped.
func sampleHeap(peak *atomic.Uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
