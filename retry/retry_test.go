package retry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestDoRetriesUntilSuccess(t *testing.T) {
	calls := 0
	v, err := Do(context.Background(), Attempts{Log: quiet}, "count", func(context.Context) (int, error) {
		calls++
		if calls < 3 {
			return 0, errors.New("not yet")
		}
		return 42, nil
	})
	if err != nil || v != 42 || calls != 3 {
		t.Fatalf("v %d, err %v, calls %d: want 42, nil, 3", v, err, calls)
	}
}

func TestDoStopsAtPermanentAndFinal(t *testing.T) {
	base := errors.New("pool exhausted")
	calls := 0
	_, err := Do(context.Background(), Attempts{Log: quiet}, "acquire", func(context.Context) (int, error) {
		calls++
		return 0, Permanent{Err: base}
	})
	if calls != 1 || !errors.Is(err, base) || err.Error() != "acquire: pool exhausted" {
		t.Fatalf("calls %d, err %v", calls, err)
	}
	final := errors.New("read-only file system")
	calls = 0
	_, err = Do(context.Background(), Attempts{Log: quiet, Final: func(e error) bool { return errors.Is(e, final) }}, "write",
		func(context.Context) (int, error) { calls++; return 0, final })
	if calls != 1 || !errors.Is(err, final) {
		t.Fatalf("calls %d, err %v", calls, err)
	}
}

func TestDoEndsWithContextAndExplains(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	explained := 0
	_, err := Do(ctx, Attempts{Log: quiet, Timeout: 10 * time.Millisecond,
		Explain: func(context.Context) error { explained++; return errors.New("connection refused") }},
		"connect", func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() })
	if !errors.Is(err, context.DeadlineExceeded) || explained == 0 {
		t.Fatalf("err %v, explained %d: want the context's end and at least one explanation", err, explained)
	}
}
