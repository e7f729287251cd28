//go:build !unit

package embedded_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/addrtest"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/embedded"
	"github.com/weftnet/weft/subnet/etcdtest"
)

func portOf(t *testing.T, hostPort string) uint16 {
	t.Helper()
	ap, err := netip.ParseAddrPort(hostPort)
	if err != nil {
		t.Fatal(err)
	}
	return ap.Port()
}

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Stopping the embedded member while another node watches it: the watch
// stream is cut at once (etcd alone waited its 7 s request timeout for
// it), etcd's own entries come through the given slog.Logger in its
// format, and a clean stop logs nothing at error level (etcd reported its
// closed listeners as four errors with stack traces).
func TestEmbeddedCloseWithWatchersIsQuickAndQuiet(t *testing.T) {
	var out lockedBuffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clientAddr, peerAddr := addrtest.FreeTCP(t), addrtest.FreeTCP(t)
	emb, err := embedded.Start(embedded.Options{
		Dir:           t.TempDir(),
		ClientURL:     "http://" + clientAddr,
		PeerURL:       "http://" + peerAddr,
		Logger:        log,
		EtcdLogLevel:  "info",
		UnsafeNoFsync: true,
		ReadyTimeout:  30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			emb.Close()
		}
	}()
	// The ports the container guard keeps containers from.
	if got, want := fmt.Sprint(emb.ListenPorts()), fmt.Sprint([]uint16{portOf(t, clientAddr), portOf(t, peerAddr)}); got != want {
		t.Errorf("ListenPorts %s, want %s (client, peer)", got, want)
	}
	cli := etcdtest.NewClient(t, subnet.ClientOptions{Endpoints: emb.Endpoints()})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	watch := cli.Watch(ctx, "/weft/network/subnets/", clientv3.WithPrefix())
	if _, err := cli.Put(ctx, "/weft/network/subnets/x", "v"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-watch: // the stream is open and delivering
	case <-ctx.Done():
		t.Fatal("no watch event")
	}

	start := time.Now()
	emb.Close()
	closed = true
	took := time.Since(start)
	// The bound is far above the normal tens of milliseconds and below the
	// 7 s etcd waits for streams it does not cut.
	if took > 5*time.Second {
		t.Errorf("Close took %s with a watcher connected", took)
	}
	t.Logf("Close took %s", took)
	logs := out.String()
	if !strings.Contains(logs, `msg="closing etcd server"`) {
		t.Errorf("etcd's entries do not come through slog:\n%s", logs)
	}
	if strings.Contains(logs, "level=ERROR") || strings.Contains(logs, `"level":"error"`) || strings.Contains(logs, "stacktrace") {
		t.Errorf("a clean stop logged errors:\n%s", logs)
	}
}
