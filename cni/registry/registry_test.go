package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 25 item 5: the endpoints file is read only if it is a regular
// file of at most MaxFile bytes (--endpoints-file /dev/zero read
// until weftd was killed at 1.47 GB).
func TestLoadEndpointsFileIsBounded(t *testing.T) {
	big := filepath.Join(t.TempDir(), "endpoints.json")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, MaxFile+1); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/dev/zero": "/dev/zero is not a regular file (a character device)",
		big:         "larger than 33554432 bytes (32 MiB)",
	} {
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%s) = %v, want an error containing %q", path, err, want)
		}
	}
	if got, err := Load(filepath.Join(t.TempDir(), "missing")); err != nil || len(got) != 0 {
		t.Errorf("a missing file: %v %v, want no records", got, err)
	}
}
