// Package flannel builds a real flanneld for weft's interoperability tests
// and benchmarks: flannel's own source at Version, from the Go module proxy,
// with a main.go that leaves out the backends whose dependencies the proxy
// does not serve (tencentvpc) or that need more than this machine has
// (ipsec, extension, wireguard). Its vxlan, udp, host-gw and ipip backends
// are flannel's, untouched. The binary is built once and cached per
// version. So is flannel's CNI plugin (CNIPlugin).
package flannel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Module and Version are the flannel release the tests run against.
const (
	Module  = "github.com/flannel-io/flannel"
	Version = "v0.28.10"
)

// droppedBackends are the backend imports left out of main.go.
var droppedBackends = []string{"extension", "ipsec", "tencentvpc", "wireguard"}

// CacheDir is where built flanneld binaries are kept: $WEFT_CACHE_DIR, else
// the user's cache directory ($XDG_CACHE_HOME or ~/.cache) + /weft.
func CacheDir() (string, error) {
	if d := os.Getenv("WEFT_CACHE_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("flannel: cache directory: %w", err)
	}
	return filepath.Join(d, "weft"), nil
}

// Flanneld returns the path of flanneld Version, building it first if the
// cache does not hold it. Concurrent callers (test binaries of several
// packages) build it once: the build holds a lock file.
func Flanneld(ctx context.Context) (string, error) {
	return cached(ctx, filepath.Join("flannel", Version), "flanneld", build)
}

// cached returns the path of binary name in the cache directory sub,
// running build(ctx, dir, bin) first when it is not there yet. The build
// holds a lock file, so concurrent callers build it once; it must write
// bin last (under a temporary name, then renamed), so that an interrupted
// build leaves no binary behind.
func cached(ctx context.Context, sub, name string, build func(ctx context.Context, dir, bin string) error) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, sub)
	bin := filepath.Join(dir, name)
	if isExecutable(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("flannel: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("flannel: lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("flannel: lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if isExecutable(bin) { // built by another process while we waited
		return bin, nil
	}
	if err := build(ctx, dir, bin); err != nil {
		return "", err
	}
	return bin, nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// build downloads the module, copies its tree to dir/src, rewrites main.go
// and builds dir/flanneld (written under a temporary name, then renamed, so
// an interrupted build leaves no binary behind).
func build(ctx context.Context, dir, bin string) error {
	start := time.Now()
	modDir, err := download(ctx, Module, Version)
	if err != nil {
		return err
	}
	src := filepath.Join(dir, "src")
	if err := os.RemoveAll(src); err != nil {
		return fmt.Errorf("flannel: %w", err)
	}
	if err := copyTree(modDir, src); err != nil {
		return fmt.Errorf("flannel: copy %s: %w", modDir, err)
	}
	mainGo := filepath.Join(src, "main.go")
	data, err := os.ReadFile(mainGo)
	if err != nil {
		return fmt.Errorf("flannel: %w", err)
	}
	data, err = DropBackends(data, droppedBackends)
	if err != nil {
		return fmt.Errorf("flannel %s main.go: %w", Version, err)
	}
	if err := os.WriteFile(mainGo, data, 0o644); err != nil {
		return fmt.Errorf("flannel: %w", err)
	}
	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp,
		"-ldflags", "-X github.com/flannel-io/flannel/pkg/version.Version="+Version, ".")
	cmd.Dir = src
	// flannel's own go.mod and go.sum; cgo on, as flannel's release builds.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("flannel: go build %s@%s: %w\n%s", Module, Version, err, tail(out, 4096))
	}
	if err := os.Rename(tmp, bin); err != nil {
		return fmt.Errorf("flannel: %w", err)
	}
	fmt.Fprintf(os.Stderr, "flannel: built flanneld %s in %v (cached in %s)\n", Version, time.Since(start).Round(time.Second), bin)
	return nil
}

// download fetches module@version into the module cache and returns its
// directory there.
func download(ctx context.Context, module, version string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", module+"@"+version)
	cmd.Dir = os.TempDir() // outside any module: a plain download
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		return "", fmt.Errorf("flannel: go mod download %s@%s: %s", module, version, info.Error)
	}
	if err != nil {
		return "", fmt.Errorf("flannel: go mod download %s@%s: %w\n%s", module, version, err, tail(stderr.Bytes(), 2048))
	}
	if info.Dir == "" {
		return "", fmt.Errorf("flannel: go mod download %s@%s: no directory in %s", module, version, tail(out, 512))
	}
	return info.Dir, nil
}

// DropBackends removes the blank imports of flannel's pkg/backend/<name>
// packages for each name from main.go's source. Each must be there exactly
// once: a flannel release that changed them fails here, not later with a
// confusing build error.
func DropBackends(mainGo []byte, names []string) ([]byte, error) {
	lines := strings.SplitAfter(string(mainGo), "\n")
	for _, name := range names {
		imp := `_ "` + Module + `/pkg/backend/` + name + `"`
		found := 0
		kept := lines[:0:0]
		for _, l := range lines {
			if strings.TrimSpace(l) == imp {
				found++
				continue
			}
			kept = append(kept, l)
		}
		if found != 1 {
			return nil, fmt.Errorf("want one import line %s, found %d", imp, found)
		}
		lines = kept
	}
	return []byte(strings.Join(lines, "")), nil
}

// copyTree copies the regular files and directories under from to to,
// writable (the module cache is read-only).
func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, data, 0o644)
		default:
			return errors.New(path + ": not a regular file or directory")
		}
	})
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
