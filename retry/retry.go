// Package retry calls a function until it succeeds, with exponential
// backoff, a bound on each attempt and one WARN per failure: how weftd
// waits for etcd while it starts.
package retry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Permanent marks an error that retrying cannot fix: Do returns it at once.
type Permanent struct{ Err error }

func (p Permanent) Error() string { return p.Err.Error() }
func (p Permanent) Unwrap() error { return p.Err }

// Attempts say how Do runs and reports each attempt.
type Attempts struct {
	// Log receives one WARN per failed attempt; give it the attributes
	// that tell the operator where the calls went (the etcd endpoints).
	Log *slog.Logger
	// Timeout bounds one attempt (0: only ctx bounds it).
	Timeout time.Duration
	// Explain, if set, is asked why an attempt ran out of time (the
	// client only says "deadline exceeded"): e.g. subnet.Probe's
	// "connection refused" or "certificate signed by unknown authority".
	Explain func(context.Context) error
	// Final, if set, says which other errors end the retries at once
	// (weftd's configuration errors); they are returned wrapped, unchanged.
	Final func(error) bool
}

// Do calls fn until it succeeds, fails permanently or ctx ends, with
// exponential backoff from 200 ms to 5 s, logging each failure at WARN.
// Its errors say what was being done.
func Do[T any](ctx context.Context, a Attempts, what string, fn func(context.Context) (T, error)) (T, error) {
	backoff := 200 * time.Millisecond
	for {
		v, err := attempt(ctx, a.Timeout, fn)
		if err == nil {
			return v, nil
		}
		var p Permanent
		if errors.As(err, &p) {
			return v, fmt.Errorf("%s: %w", what, p.Err)
		}
		if a.Final != nil && a.Final(err) {
			return v, fmt.Errorf("%s: %w", what, err)
		}
		if ctx.Err() != nil {
			return v, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		attrs := []any{"what", what, "err", err}
		if a.Explain != nil && errors.Is(err, context.DeadlineExceeded) {
			if cause := a.Explain(ctx); cause != nil {
				attrs = append(attrs, "cause", cause)
			}
		}
		log := a.Log
		if log == nil {
			log = slog.Default()
		}
		log.Warn("retrying", append(attrs, "in", backoff)...)
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
