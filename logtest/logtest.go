// Package logtest holds a slog handler for tests that assert on what was
// logged at WARN or above.
package logtest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// Counter is a slog handler that keeps every record at WARN or above as a
// line: the message, then " key=value" per attribute. Safe for concurrent
// use.
type Counter struct {
	mu      sync.Mutex
	records []string
}

func (c *Counter) Enabled(context.Context, slog.Level) bool { return true }
func (c *Counter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *Counter) WithGroup(string) slog.Handler            { return c }
func (c *Counter) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil
	}
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	c.mu.Lock()
	c.records = append(c.records, b.String())
	c.mu.Unlock()
	return nil
}

// Lines returns a copy of the lines kept so far.
func (c *Counter) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.records...)
}

// Containing counts the lines that contain s.
func (c *Counter) Containing(s string) int {
	n := 0
	for _, l := range c.Lines() {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}
