package testbed

import (
	"context"
	"fmt"
	"time"
)

// DefaultWaitTimeout bounds WaitFor when ctx has no deadline of its own.
const DefaultWaitTimeout = 30 * time.Second

// WaitFor calls cond every interval until it returns nil. When ctx ends
// (or DefaultWaitTimeout passes, if ctx has no deadline) it returns cond's
// last error, wrapped with the reason it stopped.
func WaitFor(ctx context.Context, interval time.Duration, cond func() error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultWaitTimeout)
		defer cancel()
	}
	start := time.Now()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %v (%w): %w", time.Since(start).Round(time.Millisecond), ctx.Err(), err)
		case <-ticker.C:
		}
	}
}
