// Package daemonsock is the local protocol by which the CNI plugin tells
// weftd about the containers it attaches and detaches, so that weftd can
// publish them (IP, namespace, pod, labels) for network policy. The plugin
// never talks to etcd.
//
// It is a unix stream socket (DefaultPath). Each connection carries one
// request, a JSON object and a newline, and one answer in the same form:
// {} on success, {"error":"..."} otherwise.
package daemonsock

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// DefaultPath is where weftd listens and the plugin connects.
const DefaultPath = "/run/weft/weftd.sock"

// Operations.
const (
	OpAdd = "add"
	OpDel = "del"
)

// MaxRequest bounds a request: a larger one (or one without a newline
// within it) is answered with an error naming the bound and the connection
// closed. A request is a few hundred bytes; labels are bounded by
// Kubernetes' rules (63-byte names, 63-byte values), so 64 KiB holds
// hundreds of them.
const MaxRequest = 64 << 10

// maxAnswer bounds an answer the plugin reads.
const maxAnswer = 1 << 20

// MaxInFlight is how many connections Serve reads and answers at once;
// further ones wait in the kernel's listen queue (their bytes in the
// kernel's socket buffers, not in weftd) until one ends, so the memory a
// burst of connections costs weftd is bounded by MaxInFlight requests.
const MaxInFlight = 32

// requestTimeout is how long a connection may take to send its request
// (the plugin writes it at once): a client that connects and sends
// nothing, or trickles, holds one of the MaxInFlight places this long.
const requestTimeout = 5 * time.Second

// Request tells weftd about one address of a container interface: a
// dual-stack container is two requests, one per family.
type Request struct {
	Op          string            `json:"op"`
	IP          netip.Addr        `json:"ip,omitzero"`
	Namespace   string            `json:"namespace,omitempty"`
	Pod         string            `json:"pod,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	ContainerID string            `json:"containerID"`
	IfName      string            `json:"ifName"`
	// Network is the CNI network name.
	Network string `json:"network,omitempty"`
	// DataDir is the plugin's address store, where weftd can check after
	// a restart that the container still holds IP.
	DataDir string `json:"dataDir,omitempty"`
}

// Validate checks what both sides rely on.
func (r Request) Validate() error {
	switch r.Op {
	case OpAdd:
		if !r.IP.Is4() && (!r.IP.Is6() || r.IP.Is4In6() || r.IP.Zone() != "") {
			return fmt.Errorf("add: IP %v is not an IPv4 or IPv6 address", r.IP)
		}
		if r.Namespace == "" {
			return errors.New("add: no namespace")
		}
	case OpDel:
	default:
		return fmt.Errorf("unknown op %q (want %q or %q)", r.Op, OpAdd, OpDel)
	}
	if r.ContainerID == "" || r.IfName == "" {
		return fmt.Errorf("%s: containerID and ifName are required", r.Op)
	}
	return nil
}

type answer struct {
	Error string `json:"error,omitempty"`
}

// Send delivers req to the weftd listening at path and returns its error,
// if any. A daemon that cannot be reached gives an error wrapping
// ErrUnreachable.
func Send(ctx context.Context, path string, req Request) error {
	if err := req.Validate(); err != nil {
		return err
	}
	if data, err := json.Marshal(req); err != nil || len(data)+1 > MaxRequest {
		return fmt.Errorf("%s: request of %d bytes is larger than %d (too many or too long labels?)", req.Op, len(data)+1, MaxRequest)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, path, err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := writeJSON(conn, req); err != nil {
		return fmt.Errorf("weftd at %s: send %s: %w", path, req.Op, err)
	}
	var a answer
	if err := readJSON(conn, &a, maxAnswer); err != nil {
		return fmt.Errorf("weftd at %s: no answer to %s: %w", path, req.Op, err)
	}
	if a.Error != "" {
		return &RefusedError{Msg: a.Error}
	}
	return nil
}

// ErrUnreachable means no weftd listens on the socket.
var ErrUnreachable = errors.New("weftd not reachable")

// RefusedError is weftd's answer when it could not do what was asked.
type RefusedError struct{ Msg string }

func (e *RefusedError) Error() string { return "weftd: " + e.Msg }

// CheckNotServed returns an error when a process (another weftd) accepts
// connections on the socket at path; nil when nothing does, or there is
// no socket. It changes nothing.
func CheckNotServed(path string) error {
	if path == "" {
		return nil
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil
	}
	_ = c.Close()
	return fmt.Errorf("cni socket %s: another weftd is listening on it", path)
}

// Listen creates the socket at path (its directory too), replacing a
// stale socket left by an earlier run; only root may connect (0600), and
// Serve answers only processes of weftd's own user (SO_PEERCRED).
func Listen(path string) (net.Listener, error) {
	if len(path) >= 108 {
		return nil, fmt.Errorf("cni socket %s: path longer than 107 bytes", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("cni socket: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("cni socket %s: exists and is not a socket", path)
		}
		if err := CheckNotServed(path); err != nil {
			return nil, err
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("cni socket: remove stale %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("cni socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("cni socket: %w", err)
	}
	return ln, nil
}

// Handler does what a request asks; its error goes back to the plugin.
type Handler func(context.Context, Request) error

// Serve answers requests on ln with handle, one goroutine per connection
// and at most MaxInFlight at once, until ctx ends; then it closes ln and
// returns nil. A connection gets requestTimeout to send its request (at
// most MaxRequest bytes) and timeout (default 30s) for the whole exchange.
func Serve(ctx context.Context, ln net.Listener, timeout time.Duration, handle Handler) error {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	slots := make(chan struct{}, MaxInFlight)
	for {
		// Wait for a place before accepting: the connections beyond
		// MaxInFlight stay in the listen queue.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		conn, err := ln.Accept()
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("cni socket: accept: %w", err)
		}
		go func() {
			defer func() { <-slots }()
			serveConn(ctx, conn, timeout, handle)
		}()
	}
}

func serveConn(ctx context.Context, conn net.Conn, timeout time.Duration, handle Handler) {
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	conn.SetDeadline(start.Add(min(requestTimeout, timeout)))
	var req Request
	var a answer
	// The request is read before the peer is judged: answering and closing
	// first would make the client's write fail (EPIPE) and hide the answer.
	readErr := readJSON(conn, &req, MaxRequest)
	conn.SetDeadline(start.Add(timeout))
	if err := checkPeer(conn); err != nil {
		a.Error = "refused: " + err.Error()
	} else if readErr != nil {
		a.Error = "malformed request: " + readErr.Error()
	} else if err := req.Validate(); err != nil {
		a.Error = err.Error()
	} else if err := handle(ctx, req); err != nil {
		a.Error = err.Error()
	}
	_ = writeJSON(conn, a)
	if readErr != nil {
		drain(conn)
	}
}

// maxDrain is how much of an unread request Serve discards after its
// answer, within drainTimeout: closing a unix socket with unread input
// resets the connection, and the client would never see why.
const (
	maxDrain     = 1 << 20
	drainTimeout = time.Second
)

// drain ends the answer (shutdown for writing) and discards what is left
// of the request, without keeping it, so that the peer reads the answer.
func drain(conn net.Conn) {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	conn.SetReadDeadline(time.Now().Add(drainTimeout))
	_, _ = io.CopyN(io.Discard, conn, maxDrain)
}

func writeJSON(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// readJSON reads one line of at most limit bytes (newline included) and
// decodes it into v.
func readJSON(r io.Reader, v any, limit int64) error {
	line, err := bufio.NewReader(io.LimitReader(r, limit)).ReadBytes('\n')
	if errors.Is(err, io.EOF) && int64(len(line)) == limit {
		return fmt.Errorf("larger than %d bytes (the most weftd reads) or without a newline", limit)
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}
