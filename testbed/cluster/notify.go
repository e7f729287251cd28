package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// notifySocket is the receiving end of the systemd notification protocol:
// a unixgram socket whose path goes into weftd's NOTIFY_SOCKET. Path-bound
// unix sockets work across network namespaces.
type notifySocket struct {
	path  string
	conn  *net.UnixConn
	mu    sync.Mutex
	ready time.Time
	// onReady runs in the reader the moment READY=1 arrives; its result
	// is kept (tests check what was true at that moment).
	onReady    func() error
	onReadyErr error
	msgs       []string
	done       chan struct{}
	wake       chan struct{}
}

// newNotifySocket binds in a short temporary directory: socket paths are
// limited to 108 bytes and test directories can be longer.
func newNotifySocket(onReady func() error) (*notifySocket, error) {
	dir, err := os.MkdirTemp("", "weftn")
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	s := &notifySocket{path: path, conn: conn, onReady: onReady, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	go s.read()
	return s, nil
}

func (s *notifySocket) read() {
	defer close(s.done)
	buf := make([]byte, 4096)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			return
		}
		msg := string(buf[:n])
		s.mu.Lock()
		s.msgs = append(s.msgs, msg)
		for _, line := range strings.Split(msg, "\n") {
			if line == "READY=1" && s.ready.IsZero() {
				s.ready = time.Now()
				if s.onReady != nil {
					s.onReadyErr = s.onReady()
				}
			}
		}
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (s *notifySocket) readyAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

func (s *notifySocket) readyCheck() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.onReadyErr
}

// Messages returns every notification received so far.
func (s *notifySocket) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

func (s *notifySocket) waitReady(ctx context.Context) error {
	for {
		if !s.readyAt().IsZero() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no READY=1 (got %q): %w", s.messages(), ctx.Err())
		case <-s.done:
			if !s.readyAt().IsZero() {
				return nil
			}
			return fmt.Errorf("notify socket closed before READY=1")
		case <-s.wake:
		}
	}
}

func (s *notifySocket) close() {
	s.conn.Close()
	<-s.done
	os.RemoveAll(filepath.Dir(s.path))
}
