// Package logjournal makes log/slog handlers for systemd's journal: every
// record is one line starting with its syslog priority prefix ("<4>"), so
// that `journalctl -p warning` shows warnings and errors; the format after
// the prefix (text or JSON) is the inner handler's.
package logjournal

import (
	"context"
	"io"
	"log/slog"
	"sync"
)

// Syslog priorities as sd-daemon(3) prefixes: journald reads a line that
// starts with "<N>" as having priority N, so `journalctl -p warning` shows
// weftd's warnings and errors. Without the prefix every line is 6 (info).
const (
	prefixErr     = "<3>"
	prefixWarning = "<4>"
	prefixInfo    = "<6>"
	prefixDebug   = "<7>"
)

// priorityPrefix maps a slog level to its syslog priority prefix.
func priorityPrefix(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return prefixErr
	case l >= slog.LevelWarn:
		return prefixWarning
	case l >= slog.LevelInfo:
		return prefixInfo
	default:
		return prefixDebug
	}
}

// WithPriorityPrefix returns a handler made by newHandler (a text or JSON
// handler writing to the writer it is given) whose every line starts with
// the record's syslog priority prefix. The format after the prefix is
// unchanged.
func WithPriorityPrefix(w io.Writer, newHandler func(io.Writer) slog.Handler) slog.Handler {
	out := &prefixWriter{w: w}
	return &priorityHandler{inner: newHandler(out), out: out}
}

// priorityHandler sets the prefix for the record it passes to the inner
// handler; the inner handler writes each record in one Write.
type priorityHandler struct {
	inner slog.Handler
	out   *prefixWriter // shared by every handler derived with WithAttrs/WithGroup
}

func (h *priorityHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *priorityHandler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.prefix = priorityPrefix(r.Level)
	return h.inner.Handle(ctx, r)
}

func (h *priorityHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &priorityHandler{inner: h.inner.WithAttrs(attrs), out: h.out}
}

func (h *priorityHandler) WithGroup(name string) slog.Handler {
	return &priorityHandler{inner: h.inner.WithGroup(name), out: h.out}
}

// prefixWriter writes prefix before each record; mu, held by
// priorityHandler.Handle, guards prefix and serialises the records.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(append(p.buf[:0], p.prefix...), b...)
	if _, err := p.w.Write(p.buf); err != nil {
		return 0, err
	}
	return len(b), nil
}
