//go:build !unit

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/weftnet/weft/retry"
)

func TestExitCode(t *testing.T) {
	cfgErr := fmt.Errorf("start: %w", configErrorf("--subnet-file %s: read-only file system", "/etc/x"))
	for _, tc := range []struct {
		name      string
		err       error
		signalled bool
		want      int
	}{
		{"clean stop", nil, true, exitClean},
		{"runtime failure", errors.New("data path: stopped unexpectedly"), false, exitFailure},
		{"config error, wrapped", cfgErr, false, exitConfig},
		{"signal while starting", fmt.Errorf("read network config: %w", context.Canceled), true, exitClean},
		{"signal beats a failure", errors.New("lease lost"), true, exitClean},
	} {
		if got := exitCode(tc.err, tc.signalled); got != tc.want {
			t.Errorf("%s: exit code %d, want %d", tc.name, got, tc.want)
		}
	}
	if !strings.Contains(cfgErr.Error(), "read-only file system") || asConfigError(nil) != nil {
		t.Fatalf("config errors must keep their message and nil must stay nil: %v", cfgErr)
	}
}

func TestRunExitCodesForBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--subnet-lease-ttl", "banana"},
		{"--no-such-flag"},
		{"--log-level", "loud"},
		{"--log-format", "xml"},
		{"--etcd-endpoints", "htp//10.0.0.1:2379"},
		{"--etcd-endpoints", "https://127.0.0.1:1", "--etcd-cafile", "/nonexistent/ca.pem", "--healthz-port", "0"},
	} {
		if code := run(args, io.Discard); code != exitConfig {
			t.Errorf("%q: exit code %d, want %d (EX_CONFIG)", args, code, exitConfig)
		}
	}
	if code := run([]string{"--help"}, io.Discard); code != exitClean {
		t.Errorf("--help: exit code %d", code)
	}
}

func TestRetryStopsAtConfigErrors(t *testing.T) {
	calls := 0
	_, err := retry.Do(context.Background(), retry.Attempts{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Final: isConfigError}, "write subnet file",
		func(context.Context) (int, error) {
			calls++
			return 0, configErrorf("read-only file system")
		})
	if calls != 1 || !isConfigError(err) {
		t.Fatalf("calls %d, err %v: want one call and a config error", calls, err)
	}
}
