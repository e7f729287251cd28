package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// microPackage holds the Go microbenchmarks the harness runs.
const microPackage = "./overlay/..."

// runMicro runs the overlay package's Go benchmarks from the module root
// and returns their output; a missing package is reported, not fatal.
func runMicro(ctx context.Context, moduleRoot string) (string, error) {
	if _, err := os.Stat(filepath.Join(moduleRoot, "overlay")); errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("package %s is not there yet", microPackage)
	}
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-run=^$", "-bench=.", "-benchmem", microPackage)
	cmd.Dir = moduleRoot
	// Kill the test binaries too, not only the go command.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("go test -bench %s: %w", microPackage, err)
	}
	return string(out), nil
}

// findModuleRoot walks up from dir to the directory holding go.mod.
func findModuleRoot(dir string) (string, error) {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory; run from the weft repository")
		}
		dir = parent
	}
}
