package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
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

// hugeConfig is a valid network config of 256 MiB: '{..."x":"AAAA..."}'.
type hugeConfig struct{ read int64 }

func (e *hugeConfig) Read(p []byte) (int, error) {
	const size = 256 << 20
	head := []byte(`{"cniVersion":"1.1.0","name":"n","type":"weft","x":"`)
	tail := []byte(`"}`)
	n := 0
	for n < len(p) && e.read < size {
		switch {
		case e.read < int64(len(head)):
			n += copy(p[n:n+1], head[e.read:])
		case e.read >= size-int64(len(tail)):
			n += copy(p[n:n+1], tail[e.read-(size-int64(len(tail))):])
		default:
			p[n] = 'A'
			n++
		}
		e.read++
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// A runtime (or anything that can run the plugin) that sends a network
// config of 256 MiB: the plugin reads at most cni.MaxConfigSize (and a
// little more, what the pipe holds) and fails with a CNI error naming the
// bound, instead of reading all of it into memory (the CNI library reads
// stdin whole, and the config was then decoded four times over).
func TestHugeStdinBounded(t *testing.T) {
	bin := buildPlugin(t)
	for _, command := range []string{"STATUS", "GC", "ADD", "DEL"} {
		in := &hugeConfig{}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = []string{"CNI_COMMAND=" + command, "CNI_CONTAINERID=c1", "CNI_IFNAME=eth0", "CNI_NETNS=/var/run/netns/absent", "CNI_PATH=/nonexistent"}
		cmd.Stdin = in
		var out bytes.Buffer
		cmd.Stdout = &out
		err := cmd.Run()
		timedOut := ctx.Err() != nil
		cancel()
		if timedOut {
			t.Fatalf("%s: the plugin still ran after 60 s (%d MiB of stdin read)", command, in.read>>20)
		}
		var perr struct {
			Code uint   `json:"code"`
			Msg  string `json:"msg"`
		}
		if err == nil || json.Unmarshal(out.Bytes(), &perr) != nil || perr.Code != 6 || !strings.Contains(perr.Msg, "MiB") {
			t.Errorf("%s with a 256 MiB stdin: %v, stdout %q; want CNI error 6 naming the bound", command, err, out.String())
		}
		if limit := int64(cni.MaxConfigSize) + 1<<20; in.read > limit {
			t.Errorf("%s: the plugin read %d bytes of stdin, want at most %d", command, in.read, limit)
		}
	}
}
