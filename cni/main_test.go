//go:build !unit

package cni_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cniVersionOfTool is the cnitool release matching go.mod's cni module.
const cniVersionOfTool = "v1.3.1"

// tools are the binaries built or installed once for all tests.
type tools struct {
	cniPath  string // directory with the weft and echoplugin binaries
	cnitool  string
	iptables string // empty when missing; tests that need it fail
}

// testTools is set by TestMain before any test runs and never changed.
var testTools tools

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cni tests: %v\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	if os.Geteuid() != 0 {
		return 0, fmt.Errorf("these tests create network namespaces and must run as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return 0, fmt.Errorf("the ip command (iproute2) is required: %w", err)
	}
	dir, err := os.MkdirTemp("", "weft-cni-test-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	for name, pkg := range map[string]string{
		"weft":       "github.com/weftnet/weft/cmd/weft-cni",
		"echoplugin": "github.com/weftnet/weft/cni/internal/echoplugin",
	} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("build %s: %w\n%s", pkg, err, out)
		}
	}
	tool, err := findOrInstallCnitool()
	if err != nil {
		return 0, err
	}
	testTools = tools{cniPath: dir, cnitool: tool}
	if p, err := exec.LookPath("iptables"); err == nil {
		testTools.iptables = p
	}
	return m.Run(), nil
}

func findOrInstallCnitool() (string, error) {
	if p, err := exec.LookPath("cnitool"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOPATH: %w", err)
	}
	gobin := filepath.Join(strings.TrimSpace(strings.Split(string(out), string(os.PathListSeparator))[0]), "bin")
	tool := filepath.Join(gobin, "cnitool")
	if _, err := os.Stat(tool); err == nil {
		return tool, nil
	}
	install := exec.Command("go", "install", "github.com/containernetworking/cni/cnitool@"+cniVersionOfTool)
	install.Env = append(os.Environ(), "GOBIN="+gobin)
	if out, err := install.CombinedOutput(); err != nil {
		return "", fmt.Errorf("cnitool is not installed and `go install github.com/containernetworking/cni/cnitool@%s` failed: %w\n%s",
			cniVersionOfTool, err, out)
	}
	return tool, nil
}
