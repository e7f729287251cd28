// Package etcdtest starts real embedded etcd servers for tests: a single
// member, a multi-member cluster, or a TLS-only member with client
// certificates. Everything listens on 127.0.0.1 with free ports and lives
// in t.TempDir(); t.Cleanup stops it.
package etcdtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/addrtest"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/embedded"
)

// Server is one embedded etcd member.
type Server struct {
	opts embedded.Options

	mu  sync.Mutex
	emb *embedded.Etcd
}

// Start runs a single-member etcd and stops it when the test ends.
func Start(t testing.TB) *Server { return StartWith(t, nil) }

// StartWith is Start with the member's options changed by tweak first.
func StartWith(t testing.TB, tweak func(*embedded.Options)) *Server {
	t.Helper()
	s := &Server{opts: memberOptions(t, "m0", t.TempDir())}
	if tweak != nil {
		tweak(&s.opts)
	}
	s.opts.InitialCluster = s.opts.Name + "=" + s.opts.PeerURL
	s.start(t)
	t.Cleanup(s.Stop)
	return s
}

// memberOptions picks free ports for one member.
func memberOptions(t testing.TB, name, dir string) embedded.Options {
	t.Helper()
	return embedded.Options{
		Dir:           dir,
		Name:          name,
		ClientURL:     "http://" + addrtest.FreeTCP(t),
		PeerURL:       "http://" + addrtest.FreeTCP(t),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		UnsafeNoFsync: true,
		// Shutting down with open client streams logs errors; keep tests quiet.
		EtcdLogLevel: "fatal",
		ReadyTimeout: 30 * time.Second,
	}
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	emb, err := embedded.Start(s.opts)
	if err != nil {
		t.Fatalf("etcdtest: start etcd member %s: %v", s.opts.Name, err)
	}
	s.mu.Lock()
	s.emb = emb
	s.mu.Unlock()
}

// Endpoints returns the client URL.
func (s *Server) Endpoints() []string { return []string{s.opts.ClientURL} }

// Client returns a client of this server, closed when the test ends.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return NewClient(t, subnet.ClientOptions{Endpoints: s.Endpoints()})
}

// Stop stops the server (the data stays); calling it twice is fine.
func (s *Server) Stop() {
	s.mu.Lock()
	emb := s.emb
	s.emb = nil
	s.mu.Unlock()
	if emb != nil {
		emb.Close()
	}
}

// Restart stops the server if it runs and starts it again on the same
// data directory and ports.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.start(t)
}

// NewClient builds a client with opts and closes it when the test ends.
func NewClient(t testing.TB, opts subnet.ClientOptions) *clientv3.Client {
	t.Helper()
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	cli, err := subnet.NewClient(opts)
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := subnet.Ping(ctx, cli, 10*time.Second); err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	return cli
}

// Compact compacts the server's history up to its current revision.
func Compact(t testing.TB, cli *clientv3.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "etcdtest-compact")
	if err != nil {
		t.Fatalf("etcdtest: read revision: %v", err)
	}
	rev := resp.Header.Revision
	if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("etcdtest: compact to %d: %v", rev, err)
	}
	return rev
}

func (s *Server) String() string { return fmt.Sprintf("etcd %s at %s", s.opts.Name, s.opts.ClientURL) }
