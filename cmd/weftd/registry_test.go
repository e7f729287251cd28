//go:build !unit

package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftnet/weft/cni/daemonsock"
	"github.com/weftnet/weft/policy"
	"github.com/weftnet/weft/policy/engine"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/etcdtest"
	"github.com/weftnet/weft/workload"
)

// registryDaemon is a weftd with just what startRegistry needs.
func registryDaemon(t *testing.T, srv *etcdtest.Server, dir string) *weftd {
	t.Helper()
	opts, err := parseFlags([]string{"--etcd-endpoints", srv.Endpoints()[0],
		"--cni-socket", filepath.Join(dir, "cni.sock"), "--endpoints-file", filepath.Join(dir, "endpoints.json")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d := newDaemon(opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	d.mgr = subnet.NewManager(srv.Client(t), subnet.Options{Logger: d.log})
	d.store = workload.New(d.mgr, d.log)
	return d
}

// testSubnet is the node subnet the registry tests run with.
var testSubnet = netip.MustParsePrefix("10.244.1.0/24")

// runRegistry starts the registry and returns a function stopping it.
func runRegistry(t *testing.T, d *weftd) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if err := d.startRegistry(ctx, &wg, "192.0.2.1", testSubnet, netip.Prefix{}); err != nil {
		cancel()
		t.Fatal(err)
	}
	return func() { cancel(); wg.Wait() }
}

func published(t *testing.T, m *workload.Store) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	eps, err := m.ListAttachments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, e := range eps {
		s = append(s, e.IP.String()+" "+e.Namespace+"/"+e.Pod+" "+e.ContainerID)
	}
	return strings.Join(s, "; ")
}

// fakeInstaller records the rule sets the engine installs.
type fakeInstaller struct {
	mu   sync.Mutex
	rs   policy.RuleSet
	fail atomic.Bool
}

func (f *fakeInstaller) Apply(rs policy.RuleSet) error {
	if f.fail.Load() {
		return errors.New("fake: cannot install")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rs = rs
	return nil
}

func (f *fakeInstaller) last() policy.RuleSet {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rs
}

func (f *fakeInstaller) Changed() (string, error)          { return "", nil }
func (f *fakeInstaller) Drops() (policy.DropCounts, error) { return policy.DropCounts{}, nil }

func TestEndpointRegistry(t *testing.T) {
	srv := etcdtest.Start(t)
	dir := t.TempDir()
	ipam := filepath.Join(dir, "ipam")
	os.MkdirAll(ipam, 0o755)
	d := registryDaemon(t, srv, dir)
	// The engine runs with a fake installer: an ADD returns once the
	// container's rules are "in force".
	fake := &fakeInstaller{}
	pe := engine.New(engine.Options{Node: "192.0.2.1", Log: d.log, Enforcer: fake, EnableBridgeFiltering: func() error { return nil }})
	d.state.policy.Store(pe)
	pe.Offer(workload.View{})
	ectx, ecancel := context.WithCancel(context.Background())
	defer ecancel()
	go pe.Run(ectx, 0)
	stop := runRegistry(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sock := d.opts.cniSocket

	add := func(ip, ns, pod, id string) error {
		// The plugin's store holds the address, as after a real ADD.
		os.WriteFile(filepath.Join(ipam, ip), []byte(id+"\r\neth0"), 0o644)
		return daemonsock.Send(ctx, sock, daemonsock.Request{Op: "add", IP: netip.MustParseAddr(ip), Namespace: ns, Pod: pod,
			Labels: map[string]string{"app": pod}, ContainerID: id, IfName: "eth0", DataDir: ipam})
	}
	for _, c := range [][4]string{{"10.244.1.2", "x", "a", "c1"}, {"10.244.1.3", "x", "b", "c2"}, {"10.244.1.4", "y", "c", "c3"}} {
		if err := add(c[0], c[1], c[2], c[3]); err != nil {
			t.Fatal(err)
		}
	}
	// weftd refuses what subnet would not store, with the reason.
	var refused *daemonsock.RefusedError
	if err := add("10.244.1.5", "Bad", "d", "c4"); !errors.As(err, &refused) || !strings.Contains(refused.Msg, `namespace "Bad"`) {
		t.Fatalf("bad namespace: %v", err)
	}
	// An address outside this node's subnet (another node's container, whose
	// endpoint key it would take over) is refused and nothing is published.
	if err := add("10.244.2.7", "x", "e", "c5"); !errors.As(err, &refused) || !strings.Contains(refused.Msg, "not in this node's subnet 10.244.1.0/24") {
		t.Fatalf("address outside the subnet: %v", err)
	}
	// DEL of one interface; a DEL naming another container's IP changes nothing.
	if err := daemonsock.Send(ctx, sock, daemonsock.Request{Op: "del", IP: netip.MustParseAddr("10.244.1.3"), ContainerID: "c2", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(ipam, "10.244.1.3"))
	if err := daemonsock.Send(ctx, sock, daemonsock.Request{Op: "del", IP: netip.MustParseAddr("10.244.1.2"), ContainerID: "other", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	want := "10.244.1.2 x/a c1; 10.244.1.4 y/c c3"
	if got := published(t, d.store); got != want {
		t.Fatalf("published: %s, want %s", got, want)
	}
	// The policy engine sees the same, from the registry itself: the last
	// rules it installed were built with this node's containers.
	var local []string
	for _, ip := range fake.last().Sources {
		local = append(local, ip.IP.String())
	}
	slices.Sort(local)
	if got := strings.Join(local, "; "); got != "10.244.1.2; 10.244.1.4" {
		t.Fatalf("the policy engine's rules bind %s, want the registry's 10.244.1.2 and 10.244.1.4", got)
	}
	// Rules that cannot be installed: the ADD fails after waiting (the
	// plugin then removes the interface) and nothing stays published.
	fake.fail.Store(true)
	start := time.Now()
	if err := add("10.244.1.7", "x", "f", "c7"); !errors.As(err, &refused) || !strings.Contains(refused.Msg, "not in force") {
		t.Fatalf("ADD while rules cannot be installed: %v, want refused", err)
	}
	t.Logf("refused after %v", time.Since(start).Round(time.Millisecond))
	if got := published(t, d.store); got != want {
		t.Fatalf("published after a refused ADD: %s, want %s", got, want)
	}
	fake.fail.Store(false)
	stop()

	// While weftd is down, c3 is deleted (its address freed in the store)
	// and c1's address given to another container: both are dropped at
	// restart, and nothing else is published for this node.
	os.Remove(filepath.Join(ipam, "10.244.1.4"))
	os.WriteFile(filepath.Join(ipam, "10.244.1.2"), []byte("c9\r\neth0"), 0o644)
	d2 := registryDaemon(t, srv, dir)
	stop2 := runRegistry(t, d2)
	if got := published(t, d2.store); got != "" {
		t.Fatalf("after restart: %q, want nothing", got)
	}
	if err := add("10.244.1.6", "z", "e", "c6"); err != nil {
		t.Fatal(err)
	}
	stop2()
	data, _ := os.ReadFile(d2.opts.endpointsFile)
	if !strings.Contains(string(data), `"10.244.1.6"`) || strings.Contains(string(data), `"10.244.1.2"`) {
		t.Fatalf("endpoints file:\n%s", data)
	}

	// A restart republishes what the file lists.
	d3 := registryDaemon(t, srv, dir)
	stop3 := runRegistry(t, d3)
	if got := published(t, d3.store); got != "10.244.1.6 z/e c6" {
		t.Fatalf("after second restart: %q", got)
	}
	stop3()

	// A damaged file stops weftd with a configuration error; it is kept.
	os.WriteFile(d3.opts.endpointsFile, []byte("{not json"), 0o600)
	d4 := registryDaemon(t, srv, dir)
	var wg sync.WaitGroup
	err := d4.startRegistry(ctx, &wg, "192.0.2.1", testSubnet, netip.Prefix{})
	if !isConfigError(err) || !strings.Contains(err.Error(), "endpoints file") {
		t.Fatalf("damaged endpoints file: %v", err)
	}
	if data, _ := os.ReadFile(d3.opts.endpointsFile); string(data) != "{not json" {
		t.Fatalf("the damaged file was changed: %q", data)
	}
}
