package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/cni"
)

func buildPlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "weft")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runPlugin(t *testing.T, bin string, env []string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func TestBinaryAboutAndVersion(t *testing.T) {
	bin := buildPlugin(t)
	_, stderr, err := runPlugin(t, bin, nil)
	if err != nil || !strings.Contains(stderr, "CNI plugin weft") {
		t.Fatalf("without CNI_COMMAND: err %v, stderr %q", err, stderr)
	}
	stdout, _, err := runPlugin(t, bin, []string{"CNI_COMMAND=VERSION"})
	if err != nil {
		t.Fatalf("VERSION: %v", err)
	}
	var info struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal([]byte(stdout), &info); err != nil {
		t.Fatalf("VERSION output %q: %v", stdout, err)
	}
	if !slices.Equal(info.SupportedVersions, []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}) {
		t.Fatalf("supported versions %v", info.SupportedVersions)
	}
}

// The example conflist shipped in scripts/ must be accepted by the plugin.
func TestExampleConflistIsValid(t *testing.T) {
	data, err := os.ReadFile("../../scripts/10-weft.conflist")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatalf("parse conflist: %v", err)
	}
	if len(list.Plugins) == 0 || list.Plugins[0]["type"] != "weft" {
		t.Fatalf("weft is not the first plugin: %v", list.Plugins)
	}
	conf := list.Plugins[0]
	conf["cniVersion"], conf["name"] = list.CNIVersion, list.Name
	raw, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cni.ParseConfig(raw); err != nil {
		t.Fatalf("example weft config rejected: %v", err)
	}
}
