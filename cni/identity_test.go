//go:build !unit

package cni_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/cni/daemonsock"
)

// fakeWeftd answers the plugin's socket like weftd and records requests.
type fakeWeftd struct {
	path   string
	mu     sync.Mutex
	reqs   []daemonsock.Request
	refuse string // when set, every request gets this error
	stop   func()
}

func startFakeWeftd(t *testing.T) *fakeWeftd {
	t.Helper()
	f := &fakeWeftd{path: filepath.Join(t.TempDir(), "weftd.sock")}
	ln, err := daemonsock.Listen(f.path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		daemonsock.Serve(ctx, ln, 10*time.Second, func(_ context.Context, r daemonsock.Request) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.reqs = append(f.reqs, r)
			if f.refuse != "" {
				return errors.New(f.refuse)
			}
			return nil
		})
	}()
	f.stop = func() { cancel(); <-done }
	t.Cleanup(f.stop)
	return f
}

func (f *fakeWeftd) take() []daemonsock.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reqs
	f.reqs = nil
	return r
}

func (f *fakeWeftd) setRefuse(msg string) {
	f.mu.Lock()
	f.refuse = msg
	f.mu.Unlock()
}

// cnitoolArgs runs cnitool with CNI_ARGS set.
func (h *host) cnitoolArgs(verb, nsPath, cniArgs string) (string, error) {
	return h.ns.execErr("env", "CNI_PATH="+testTools.cniPath, "NETCONFPATH="+h.confDir, "CNI_ARGS="+cniArgs,
		testTools.cnitool, verb, h.network, nsPath)
}

func hostVethCount(t *testing.T, h *host) int {
	t.Helper()
	out := h.ns.exec(t, "ip", "-o", "link", "show", "type", "veth")
	return strings.Count(out, "\n")
}

func TestPluginRegistersContainersWithWeftd(t *testing.T) {
	t.Parallel()
	weftd := startFakeWeftd(t)
	h := newHost(t, "10.244.7.1/24", map[string]any{
		"daemonSocket": weftd.path,
		"args":         map[string]any{"cni": map[string]any{"labels": []any{map[string]any{"key": "app", "value": "web"}, map[string]any{"key": "example.com/tier", "value": ""}}}},
	})

	// Namespace and pod from CNI_ARGS, labels from args.cni.labels.
	ctr := newNetns(t, "wtc")
	out, err := h.cnitoolArgs("add", ctr.path(), "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1;K8S_POD_INFRA_CONTAINER_ID=x")
	if err != nil {
		t.Fatalf("add: %v\n%s", err, out)
	}
	ip := containerIP(t, parseResult(t, []byte(out)))
	reqs := weftd.take()
	if len(reqs) != 1 {
		t.Fatalf("weftd got %d requests: %+v", len(reqs), reqs)
	}
	r := reqs[0]
	if r.Op != "add" || r.IP.String() != ip || r.Namespace != "shop" || r.Pod != "web-1" || len(r.Labels) != 2 ||
		r.Labels["app"] != "web" || r.Labels["example.com/tier"] != "" || r.ContainerID != containerIDOf(ctr) ||
		r.IfName != "eth0" || r.Network != h.network || r.DataDir != h.dataDir {
		t.Fatalf("add request %+v", r)
	}
	if out, err := h.cnitool("del", ctr.path()); err != nil {
		t.Fatalf("del: %v\n%s", err, out)
	}
	reqs = weftd.take()
	if len(reqs) != 1 || reqs[0].Op != "del" || reqs[0].IP.String() != ip || reqs[0].ContainerID != containerIDOf(ctr) {
		t.Fatalf("del requests %+v", reqs)
	}

	// WEFT_LABELS in CNI_ARGS adds to and overrides the config's labels.
	ctrL := newNetns(t, "wtc")
	if out, err := h.cnitoolArgs("add", ctrL.path(), "K8S_POD_NAMESPACE=shop;WEFT_LABELS=app:api,team:a"); err != nil {
		t.Fatalf("add: %v\n%s", err, out)
	}
	t.Cleanup(func() { h.cnitool("del", ctrL.path()) })
	if reqs := weftd.take(); len(reqs) != 1 || len(reqs[0].Labels) != 3 || reqs[0].Labels["app"] != "api" || reqs[0].Labels["team"] != "a" || reqs[0].Labels["example.com/tier"] != "" {
		t.Fatalf("requests %+v", reqs)
	}
	if out, err := h.cnitoolArgs("add", newNetns(t, "wtc").path(), "WEFT_LABELS=novalue"); err == nil || !strings.Contains(out, "WEFT_LABELS") {
		t.Fatalf("add with bad WEFT_LABELS: %v\n%s", err, out)
	}

	// Without K8S_POD_NAMESPACE: the default namespace.
	ctr2 := newNetns(t, "wtc")
	if out, err := h.cnitool("add", ctr2.path()); err != nil {
		t.Fatalf("add: %v\n%s", err, out)
	}
	t.Cleanup(func() { h.cnitool("del", ctr2.path()) })
	if reqs := weftd.take(); len(reqs) != 1 || reqs[0].Namespace != "default" || reqs[0].Pod != "" {
		t.Fatalf("requests %+v", reqs)
	}
	h.writeConflist(t, map[string]any{"daemonSocket": weftd.path, "defaultNamespace": "batch"})
	ctr3 := newNetns(t, "wtc")
	if out, err := h.cnitool("add", ctr3.path()); err != nil {
		t.Fatalf("add: %v\n%s", err, out)
	}
	t.Cleanup(func() { h.cnitool("del", ctr3.path()) })
	if reqs := weftd.take(); len(reqs) != 1 || reqs[0].Namespace != "batch" || len(reqs[0].Labels) != 0 {
		t.Fatalf("requests %+v", reqs)
	}
}

// ADD fails, and leaves nothing behind, when weftd refuses the container
// or cannot be reached: a container that is not registered could not be
// policed. DEL works without weftd.
func TestPluginAddFailsWithoutWeftd(t *testing.T) {
	t.Parallel()
	weftd := startFakeWeftd(t)
	h := newHost(t, "10.244.7.1/24", map[string]any{"daemonSocket": weftd.path})
	kept := newNetns(t, "wtc")
	if out, err := h.cnitool("add", kept.path()); err != nil {
		t.Fatalf("add: %v\n%s", err, out)
	}
	weftd.take()
	vethsBefore := hostVethCount(t, h)

	weftd.setRefuse(`endpoint 10.244.7.3: label key "bad key": ...`)
	ctr := newNetns(t, "wtc")
	out, err := h.cnitool("add", ctr.path())
	if err == nil || !strings.Contains(out, "weftd refused the container, so it is not attached") || !strings.Contains(out, `label key "bad key"`) {
		t.Fatalf("add with a refusing weftd: err %v\n%s", err, out)
	}
	if got := h.allocations(t); len(got) != 1 {
		t.Fatalf("allocations after refused ADD: %v", got)
	}
	if n := hostVethCount(t, h); n != vethsBefore {
		t.Fatalf("%d host veths after refused ADD, want %d", n, vethsBefore)
	}

	// A bad namespace in CNI_ARGS is refused before weftd is asked.
	weftd.setRefuse("")
	weftd.take()
	if out, err := h.cnitoolArgs("add", ctr.path(), "K8S_POD_NAMESPACE=Bad_NS"); err == nil || !strings.Contains(out, `namespace "Bad_NS"`) {
		t.Fatalf("add with a bad namespace: err %v\n%s", err, out)
	}
	if reqs := weftd.take(); len(reqs) != 0 {
		t.Fatalf("weftd asked about a bad namespace: %+v", reqs)
	}

	// weftd gone.
	weftd.stop()
	out, err = h.cnitool("add", ctr.path())
	if err == nil || !strings.Contains(out, "cannot register the container with weftd, so it is not attached") {
		t.Fatalf("add without weftd: err %v\n%s", err, out)
	}
	// The CNI error code is 11 (try again later).
	_, perr := invoke(t, pluginCall{command: "ADD", containerID: "c-direct", netns: ctr.path(), ifname: "eth0",
		stdin: h.confJSON(t, "1.1.0", map[string]any{"daemonSocket": weftd.path}), inNetns: &h.ns})
	if perr == nil || perr.Code != 11 {
		t.Fatalf("direct ADD without weftd: %+v", perr)
	}
	if got := h.allocations(t); len(got) != 1 {
		t.Fatalf("allocations after failed ADD: %v", got)
	}
	if n := hostVethCount(t, h); n != vethsBefore {
		t.Fatalf("%d host veths after failed ADD, want %d", n, vethsBefore)
	}
	if out, err := h.cnitool("del", kept.path()); err != nil {
		t.Fatalf("del without weftd: %v\n%s", err, out)
	}
	if got := h.allocations(t); len(got) != 0 {
		t.Fatalf("allocations after DEL: %v", got)
	}
	// Nothing listens any more.
	if _, err := net.Dial("unix", weftd.path); err == nil {
		t.Fatal("fake weftd still listening")
	}
}
