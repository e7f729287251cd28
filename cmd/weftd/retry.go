package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// permanent marks an error that retrying cannot fix (a configError is
// permanent too, and also ends weftd with exitConfig).
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// attemptTimeout bounds each etcd call while weftd starts, so an etcd that
// does not answer shows up as a WARN within seconds instead of a silent
// wait for systemd's start timeout.
const attemptTimeout = 5 * time.Second

// attempts say how retry runs and reports each attempt.
type attempts struct {
	// log receives one WARN per failed attempt; give it the attributes
	// that tell the operator where the calls went (the etcd endpoints).
	log *slog.Logger
	// timeout bounds one attempt (0: only ctx bounds it).
	timeout time.Duration
	// explain, if set, is asked why an attempt ran out of time (the
	// client only says "deadline exceeded"): e.g. subnet.Probe's
	// "connection refused" or "certificate signed by unknown authority".
	explain func(context.Context) error
}

// retry calls fn until it succeeds, fails permanently or ctx ends, with
// exponential backoff, logging each failure at WARN.
func retry[T any](ctx context.Context, a attempts, what string, fn func(context.Context) (T, error)) (T, error) {
	backoff := 200 * time.Millisecond
	for {
		v, err := attempt(ctx, a.timeout, fn)
		if err == nil {
			return v, nil
		}
		var p permanent
		if errors.As(err, &p) {
			return v, fmt.Errorf("%s: %w", what, p.error)
		}
		if isConfigError(err) {
			return v, fmt.Errorf("%s: %w", what, err)
		}
		if ctx.Err() != nil {
			return v, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		attrs := []any{"what", what, "err", err}
		if a.explain != nil && errors.Is(err, context.DeadlineExceeded) {
			if cause := a.explain(ctx); cause != nil {
				attrs = append(attrs, "cause", cause)
			}
		}
		a.log.Warn("retrying", append(attrs, "in", backoff)...)
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func attempt[T any](ctx context.Context, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	if timeout <= 0 {
		return fn(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return fn(ctx)
}
