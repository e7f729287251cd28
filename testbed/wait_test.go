package testbed

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWaitFor(t *testing.T) {
	calls := 0
	err := WaitFor(context.Background(), time.Millisecond, func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("WaitFor = %v after %d calls, want nil after 3", err, calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	last := errors.New("last condition error")
	err = WaitFor(ctx, 5*time.Millisecond, func() error { return last })
	if !errors.Is(err, last) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFor on timeout = %v, want the last error and DeadlineExceeded", err)
	}
}
