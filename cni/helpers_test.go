//go:build !unit

package cni_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
)

// commandTimeout bounds every external command a test runs.
const commandTimeout = 30 * time.Second

func randomSuffix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}

// run runs a command and fails the test with its output on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := runErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// netns is a named network namespace that exists for one test.
type netns struct {
	name string
}

func (n netns) path() string { return "/var/run/netns/" + n.name }

// exec runs a command inside the namespace.
func (n netns) exec(t testing.TB, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"netns", "exec", n.name}, args...)...)
}

func (n netns) execErr(args ...string) (string, error) {
	return runErr("ip", append([]string{"netns", "exec", n.name}, args...)...)
}

// newNetns creates a namespace named prefix+random suffix, with lo up, and
// deletes it when the test ends.
func newNetns(t testing.TB, prefix string) netns {
	t.Helper()
	n := netns{name: prefix + randomSuffix(t)}
	run(t, "ip", "netns", "add", n.name)
	t.Cleanup(func() {
		if out, err := runErr("ip", "netns", "del", n.name); err != nil {
			t.Errorf("delete netns %s: %v\n%s", n.name, err, out)
		}
	})
	n.exec(t, "ip", "link", "set", "lo", "up")
	return n
}

// host is a "node": a namespace playing the host, a subnet file, a data
// directory and a directory with a conflist (NETCONFPATH).
type host struct {
	ns         netns
	network    string // CNI network name
	dir        string
	subnetFile string
	dataDir    string
	confDir    string
}

// subnetEnv is the content of a subnet file as weftd writes it.
func subnetEnv(subnet string) string {
	return "WEFT_NETWORK=10.244.0.0/16\nWEFT_SUBNET=" + subnet + "\nWEFT_MTU=1468\nWEFT_IPMASQ=false\n"
}

// newHost makes a host whose subnet file holds subnet (e.g. 10.244.7.1/24)
// and whose conflist has weft with the given extra options, followed by
// the chained plugin configs in chain.
func newHost(t testing.TB, subnet string, opts map[string]any, chain ...map[string]any) *host {
	t.Helper()
	dir := t.TempDir()
	h := &host{
		ns:         newNetns(t, "wth"),
		network:    "wt" + randomSuffix(t),
		dir:        dir,
		subnetFile: filepath.Join(dir, "subnet.env"),
		dataDir:    filepath.Join(dir, "ipam"),
		confDir:    filepath.Join(dir, "net.d"),
	}
	if subnet != "" {
		if err := os.WriteFile(h.subnetFile, []byte(subnetEnv(subnet)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.writeConflist(t, opts, chain...)
	return h
}

func (h *host) pluginConf(opts map[string]any) map[string]any {
	// No weftd runs in these tests: registration is off unless a test
	// sets daemonSocket.
	conf := map[string]any{"type": "weft", "subnetFile": h.subnetFile, "dataDir": h.dataDir, "daemonSocket": ""}
	for k, v := range opts {
		conf[k] = v
	}
	return conf
}

func (h *host) writeConflist(t testing.TB, opts map[string]any, chain ...map[string]any) {
	t.Helper()
	plugins := []any{h.pluginConf(opts)}
	for _, c := range chain {
		plugins = append(plugins, c)
	}
	list := map[string]any{"cniVersion": "1.1.0", "name": h.network, "plugins": plugins}
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(h.confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.confDir, "10-weft.conflist"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cnitool runs `cnitool <verb> <network> <netns path>` in the host namespace.
func (h *host) cnitool(verb, nsPath string) (string, error) {
	return h.ns.execErr("env", "CNI_PATH="+testTools.cniPath, "NETCONFPATH="+h.confDir,
		testTools.cnitool, verb, h.network, nsPath)
}

// add attaches a new container namespace with cnitool and returns it with
// the parsed result; the container is DELeted when the test ends.
func (h *host) add(t testing.TB) (netns, *current.Result) {
	t.Helper()
	ctr := newNetns(t, "wtc")
	out, err := h.cnitool("add", ctr.path())
	if err != nil {
		t.Fatalf("cnitool add %s: %v\n%s", ctr.name, err, out)
	}
	// Registered after the namespace's cleanup, so it runs before it.
	t.Cleanup(func() {
		if out, err := h.cnitool("del", ctr.path()); err != nil {
			t.Errorf("cleanup: cnitool del %s: %v\n%s", ctr.name, err, out)
		}
	})
	return ctr, parseResult(t, []byte(out))
}

func parseResult(t testing.TB, data []byte) *current.Result {
	t.Helper()
	var res current.Result
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatalf("parse CNI result: %v\n%s", err, data)
	}
	return &res
}

// containerIP is the first address of a result, without its length.
func containerIP(t testing.TB, res *current.Result) string {
	t.Helper()
	if len(res.IPs) == 0 {
		t.Fatalf("result has no ips: %+v", res)
	}
	return res.IPs[0].Address.IP.String()
}

// allocations lists the address files of the host's IPAM directory.
func (h *host) allocations(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(h.dataDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var addrs []string
	for _, e := range entries {
		if strings.Count(e.Name(), ".") == 3 && !strings.HasPrefix(e.Name(), "last_") {
			addrs = append(addrs, e.Name())
		}
	}
	return addrs
}

// pluginCall is one direct invocation of the weft binary.
type pluginCall struct {
	command     string
	containerID string
	netns       string
	ifname      string
	args        string // CNI_ARGS
	stdin       []byte
	inNetns     *netns // nil: run in the test's own namespace (only for verbs that touch no interface)
}

// pluginError is the CNI error JSON a plugin prints on failure.
type pluginError struct {
	Code    uint   `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details"`
}

// invoke runs the plugin binary with CNI_* variables. It returns stdout
// and, when the plugin failed, its decoded error.
func invoke(t testing.TB, c pluginCall) ([]byte, *pluginError) {
	t.Helper()
	env := []string{"CNI_COMMAND=" + c.command, "CNI_PATH=" + testTools.cniPath}
	if c.containerID != "" {
		env = append(env, "CNI_CONTAINERID="+c.containerID)
	}
	if c.netns != "" {
		env = append(env, "CNI_NETNS="+c.netns)
	}
	if c.ifname != "" {
		env = append(env, "CNI_IFNAME="+c.ifname)
	}
	if c.args != "" {
		env = append(env, "CNI_ARGS="+c.args)
	}
	bin := filepath.Join(testTools.cniPath, "weft")
	args := append([]string{"-i"}, append(env, bin)...)
	name := "env"
	if c.inNetns != nil {
		args = append([]string{"netns", "exec", c.inNetns.name, "env"}, args...)
		name = "ip"
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewReader(c.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	var perr pluginError
	if jerr := json.Unmarshal(stdout.Bytes(), &perr); jerr != nil {
		t.Fatalf("plugin %s failed (%v) without CNI error JSON: stdout %q stderr %q", c.command, err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), &perr
}

// confJSON renders a single-plugin network config as the runtime sends it.
func (h *host) confJSON(t testing.TB, cniVersion string, opts map[string]any) []byte {
	t.Helper()
	conf := h.pluginConf(opts)
	conf["cniVersion"] = cniVersion
	conf["name"] = h.network
	data, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func ping(n netns, addr string) (string, error) {
	return n.execErr("ping", "-c", "1", "-W", "2", addr)
}

func mustPing(t testing.TB, n netns, addr string) {
	t.Helper()
	if out, err := ping(n, addr); err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", addr, n.name, err, out)
	}
}

func sha512Prefix(s string) []byte {
	sum := sha512.Sum512([]byte(s))
	return sum[:10]
}
