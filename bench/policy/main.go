// Command policy measures what network policy costs weft (go run
// ./bench/policy; `make bench-policy`). On a two-host testbed with weftd on
// each host it measures
//
//   - TCP throughput between a container on host 1 and one on host 2, both
//     isolated by policy, with 200 endpoints and 50 policies in force,
//     against the same path with no policy (interleaved repetitions);
//   - how long a policy change takes with 1,000 endpoints: weftd's rebuild
//     on each node (compile + one nftables transaction, its
//     weft_policy_last_apply_seconds) and from the write in etcd until both
//     nodes enforce it.
//
// It prints a Markdown section and (with -docs) replaces the policy section
// of docs/benchmarks.md. Everything it creates is removed at exit.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/weftnet/weft/policy"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
	"github.com/weftnet/weft/workload"
)

type config struct {
	bin     string
	docs    string
	reps    int
	seconds int
	changes int
}

func main() {
	var cfg config
	flag.StringVar(&cfg.bin, "bin", "", "directory holding weftd, weftctl and weft (default: build them into a temporary directory)")
	flag.StringVar(&cfg.docs, "docs", "docs", "directory whose benchmarks.md gets the policy section (empty: only print it)")
	flag.IntVar(&cfg.reps, "n", 5, "repetitions of each throughput run")
	flag.IntVar(&cfg.seconds, "t", 5, "seconds per iperf3 run")
	flag.IntVar(&cfg.changes, "changes", 10, "policy changes timed with 1,000 endpoints")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench/policy: FAILED: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	if err := testbed.CheckRoot(); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "weft-policy-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if cfg.bin == "" {
		cfg.bin = filepath.Join(work, "bin")
		for name, pkg := range map[string]string{"weftd": "./cmd/weftd", "weftctl": "./cmd/weftctl", "weft": "./cmd/weft-cni"} {
			if out, err := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(cfg.bin, name), pkg).CombinedOutput(); err != nil {
				return fmt.Errorf("build %s: %w\n%s", name, err, out)
			}
		}
	}
	bed, err := testbed.NewBed("wpb", 2, testbed.Options{})
	if err != nil {
		return err
	}
	defer bed.Close()
	c, err := cluster.New(bed, cluster.Options{Bin: cfg.bin, WorkDir: filepath.Join(work, "nodes")})
	if err != nil {
		return err
	}
	defer c.Close()
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := c.Start(startCtx); err != nil {
		return err
	}
	b := &bench{cfg: cfg, c: c, started: time.Now()}
	if err := b.setup(ctx); err != nil {
		return err
	}
	defer b.close()
	if err := b.throughput(ctx); err != nil {
		return err
	}
	if err := b.applyTimes(ctx); err != nil {
		return err
	}
	md := b.markdown()
	fmt.Print(md)
	if cfg.docs != "" {
		return updateDocs(filepath.Join(cfg.docs, "benchmarks.md"), md)
	}
	return nil
}

type bench struct {
	cfg            config
	c              *cluster.Cluster
	cli            *clientv3.Client
	m              *subnet.Manager
	store          *workload.Store
	pubs           []*workload.Publisher
	client, server *cluster.Container
	iperf          *exec.Cmd
	started        time.Time
	cancelRun      context.CancelFunc

	endpoints           int // published in the throughput runs
	none, enforced, off []float64
	rebuild             [][]float64 // per node, seconds
	endToEnd            []float64
}

func (b *bench) close() {
	if b.cancelRun != nil {
		b.cancelRun()
	}
	if b.iperf != nil && b.iperf.Process != nil {
		b.iperf.Process.Kill()
		b.iperf.Wait()
	}
	if b.cli != nil {
		b.cli.Close()
	}
	for _, ctr := range []*cluster.Container{b.client, b.server} {
		if ctr == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := ctr.Remove(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "bench-policy: remove container %s: %v\n", ctr.Name, err)
		}
		cancel()
	}
}

// etcdClient dials etcd from host 1's namespace.
func (b *bench) etcdClient() (*clientv3.Client, error) {
	host := b.c.Nodes[0].Host.NS
	dial := func(ctx context.Context, addr string) (net.Conn, error) { return host.DialContext(ctx, "tcp", addr) }
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{b.c.EtcdEndpoint()},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)},
	})
}

const benchNS = "bench"

func (b *bench) setup(ctx context.Context) error {
	cli, err := b.etcdClient()
	if err != nil {
		return err
	}
	b.cli = cli
	b.m = subnet.NewManager(cli, subnet.Options{Prefix: subnet.DefaultPrefix})
	b.store = workload.New(b.m, nil)
	runCtx, cancel := context.WithCancel(ctx)
	b.cancelRun = cancel
	for _, n := range b.c.Nodes {
		p := b.store.NewPublisher(n.Host.IP.String(), 0)
		b.pubs = append(b.pubs, p)
		go p.Run(runCtx)
	}
	actx, acancel := context.WithTimeout(ctx, time.Minute)
	defer acancel()
	b.client, err = b.c.Nodes[0].AddWorkload(actx, "wpbc-", cluster.Workload{Namespace: benchNS, Pod: "client", Labels: map[string]string{"app": "client"}})
	if err != nil {
		return err
	}
	b.server, err = b.c.Nodes[1].AddWorkload(actx, "wpbs-", cluster.Workload{Namespace: benchNS, Pod: "server", Labels: map[string]string{"app": "server"}})
	if err != nil {
		return err
	}
	b.iperf = exec.Command("ip", "netns", "exec", b.server.NS.Name, "iperf3", "-s", "-B", b.server.IP.String())
	if err := b.iperf.Start(); err != nil {
		return fmt.Errorf("iperf3 server: %w", err)
	}
	// The other 198 endpoints: addresses in rules, no containers.
	if err := b.publishFake(ctx, 0, 198); err != nil {
		return err
	}
	b.endpoints = 200
	time.Sleep(500 * time.Millisecond) // iperf3 server listening
	return nil
}

// publishFake publishes endpoints [from, to) spread over both nodes with
// the labels SyntheticWorld's policies select on.
func (b *bench) publishFake(ctx context.Context, from, to int) error {
	for i := from; i < to; i++ {
		node, k := i%2, i/2
		ep := workload.Attachment{
			IP:        netip.AddrFrom4([4]byte{10, byte(200 + node), byte(k / 200), byte(10 + k%200)}),
			Namespace: fmt.Sprintf("ns%d", i%5),
			Pod:       fmt.Sprintf("pod%d", i),
			Labels:    map[string]string{"app": fmt.Sprintf("app%d", i%10), "tier": fmt.Sprintf("tier%d", i%3)},
		}
		if err := b.pubs[node].Publish(ctx, ep); err != nil {
			return err
		}
	}
	return nil
}

// policies is 48 policies of the usual shapes over the fake endpoints and
// two isolating the client and server (default deny plus the iperf3 port).
func policies(variant int) ([]workload.Policy, error) {
	nps := policy.SyntheticWorld(0, 48, 2).Policies
	manifests := fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server, namespace: %[1]s}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 5201}, {port: %[2]d, protocol: UDP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client, namespace: %[1]s}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Ingress, Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: %[1]s}}, podSelector: {matchLabels: {app: server}}}]
    ports: [{port: 5201}]
`, benchNS, 10000+variant)
	extra, err := policy.ParseManifests([]byte(manifests))
	if err != nil {
		return nil, err
	}
	var out []workload.Policy
	for _, np := range append(nps, extra...) {
		np.APIVersion, np.Kind = policy.APIVersion, policy.Kind
		policy.SetDefaults(&np)
		data, err := json.Marshal(np)
		if err != nil {
			return nil, err
		}
		out = append(out, workload.Policy{Namespace: np.Namespace, Name: np.Name, JSON: data})
	}
	return out, nil
}

func (b *bench) applyPolicies(ctx context.Context, variant int) error {
	ps, err := policies(variant)
	if err != nil {
		return err
	}
	_, err = b.store.ApplyPolicies(ctx, ps)
	return err
}

func (b *bench) deletePolicies(ctx context.Context) error {
	ps, err := b.store.ListPolicies(ctx, "")
	if err != nil {
		return err
	}
	for _, p := range ps {
		if _, err := b.store.DeletePolicy(ctx, p.Namespace, p.Name); err != nil {
			return err
		}
	}
	return nil
}

// revision is etcd's current revision.
func (b *bench) revision(ctx context.Context) (int64, error) {
	return b.m.Revision(ctx)
}

// metric reads one unlabelled gauge from a node's /metrics.
func metric(ctx context.Context, n *cluster.Node, name string) (float64, error) {
	code, body, err := n.Get(ctx, "/metrics")
	if err != nil || code != 200 {
		return 0, fmt.Errorf("node %d /metrics: %d %v", n.Index+1, code, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("node %d: no %s in /metrics", n.Index+1, name)
}

// waitInForce waits until every node runs rules built from revision rev or
// later and returns how long that took from start.
func (b *bench) waitInForce(ctx context.Context, rev int64, start time.Time) (time.Duration, error) {
	deadline := time.Now().Add(60 * time.Second)
	for _, n := range b.c.Nodes {
		for {
			got, err := metric(ctx, n, "weft_policy_revision")
			if err == nil && got >= float64(rev) {
				break
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("node %d: policy revision %v, want >= %d (%v)\n%s", n.Index+1, got, rev, err, n.Log(20))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return time.Since(start), nil
}

func (b *bench) settle(ctx context.Context) error {
	rev, err := b.revision(ctx)
	if err != nil {
		return err
	}
	_, err = b.waitInForce(ctx, rev, time.Now())
	return err
}

func (b *bench) iperfRun(ctx context.Context) (float64, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", b.client.NS.Name, "iperf3", "-J", "-c", b.server.IP.String(), "-t", strconv.Itoa(b.cfg.seconds)).Output()
	if err != nil {
		return 0, fmt.Errorf("iperf3 client: %w: %s", err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Error != "" {
		return 0, fmt.Errorf("iperf3 output: %v %s", err, res.Error)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, nil
}

// throughput alternates runs with no policy, with 50 policies in force and
// with weft's table removed.
func (b *bench) throughput(ctx context.Context) error {
	for rep := 0; rep < b.cfg.reps; rep++ {
		for _, mode := range []string{"none", "enforced", "off"} {
			var err error
			switch mode {
			case "none":
				if err = b.deletePolicies(ctx); err == nil {
					err = b.settle(ctx)
				}
			case "enforced":
				if err = b.applyPolicies(ctx, 0); err == nil {
					err = b.settle(ctx)
				}
			case "off":
				// weftd rebuilds the table on the next change (the next
				// repetition's "none" deletes the policies).
				for _, n := range b.c.Nodes {
					for _, family := range []string{"ip", "ip6", "bridge"} {
						if _, err = n.Host.NS.Run(ctx, "nft", "delete", "table", family, policy.DefaultTable); err != nil {
							break
						}
					}
				}
			}
			if err != nil {
				return err
			}
			gbps, err := b.iperfRun(ctx)
			if err != nil {
				return err
			}
			switch mode {
			case "none":
				b.none = append(b.none, gbps)
			case "enforced":
				b.enforced = append(b.enforced, gbps)
			case "off":
				b.off = append(b.off, gbps)
			}
			fmt.Fprintf(os.Stderr, "rep %d %s: %.2f Gbit/s\n", rep+1, mode, gbps)
		}
	}
	return nil
}

// applyTimes grows the cluster to 1,000 endpoints and times policy changes.
func (b *bench) applyTimes(ctx context.Context) error {
	if err := b.publishFake(ctx, 198, 998); err != nil {
		return err
	}
	if err := b.applyPolicies(ctx, 0); err != nil {
		return err
	}
	if err := b.settle(ctx); err != nil {
		return err
	}
	b.rebuild = make([][]float64, len(b.c.Nodes))
	for i := 1; i <= b.cfg.changes; i++ {
		start := time.Now()
		if err := b.applyPolicies(ctx, i); err != nil {
			return err
		}
		rev, err := b.revision(ctx)
		if err != nil {
			return err
		}
		took, err := b.waitInForce(ctx, rev, start)
		if err != nil {
			return err
		}
		b.endToEnd = append(b.endToEnd, took.Seconds())
		for j, n := range b.c.Nodes {
			s, err := metric(ctx, n, "weft_policy_last_apply_seconds")
			if err != nil {
				return err
			}
			b.rebuild[j] = append(b.rebuild[j], s)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func spread(xs []float64) (float64, float64) {
	return slices.Min(xs), slices.Max(xs)
}

const (
	sectionBegin = "<!-- policy-bench:begin (go run ./bench/policy; make bench keeps this section) -->"
	sectionEnd   = "<!-- policy-bench:end -->"
)

func (b *bench) markdown() string {
	var s strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&s, format, args...) }
	w("%s\n## Network policy\n\n", sectionBegin)
	load := loadavg()
	w("Run of %s by `go run ./bench/policy` (%d repetitions of %d s; machine as above, load average %s).\n\n",
		b.started.UTC().Format("2006-01-02 15:04 MST"), b.cfg.reps, b.cfg.seconds, load)
	if f := strings.Fields(load); len(f) > 0 {
		if l, err := strconv.ParseFloat(f[0], 64); err == nil && l > float64(runtime.NumCPU()) {
			w("The machine was busy with other work (load above its %d cores): single runs vary widely;\n", runtime.NumCPU())
			w("the medians of the interleaved runs are the figures to compare.\n\n")
		}
	}
	nm, em, om := median(b.none), median(b.enforced), median(b.off)
	nlo, nhi := spread(b.none)
	elo, ehi := spread(b.enforced)
	olo, ohi := spread(b.off)
	w("| | TCP, 1 stream, container on host 1 -> container on host 2 | vs no policy |\n|---|---|---|\n")
	w("| no policy (weft's table with empty maps) | %.2f Gbit/s (%.2f–%.2f) | 1 |\n", nm, nlo, nhi)
	w("| %d endpoints, 50 policies, both containers isolated | %.2f Gbit/s (%.2f–%.2f) | **%.2fx** (goal >= 0.95x) |\n", b.endpoints, em, elo, ehi, em/nm)
	w("| tables removed (`nft delete table ip/ip6/bridge weft-policy`) | %.2f Gbit/s (%.2f–%.2f) | %.2fx |\n\n", om, olo, ohi, om/nm)
	w("A policy change with 1,000 endpoints (50 policies; %d changes, each one `ApplyPolicies`):\n\n", len(b.endToEnd))
	w("| | median | max |\n|---|---|---|\n")
	for j, r := range b.rebuild {
		_, hi := spread(r)
		w("| node %d: rebuild (compile + one nftables transaction) | %.0f ms | %.0f ms |\n", j+1, median(r)*1000, hi*1000)
	}
	_, hi := spread(b.endToEnd)
	w("| etcd write until both nodes enforce it | %.0f ms | %.0f ms |\n\n", median(b.endToEnd)*1000, hi*1000)
	w("- The modes alternate within each repetition. \"No policy\" means no policy objects: the table\n")
	w("  `ip weft-policy` holds empty maps and conntrack tracks the traffic; \"tables removed\" is weft\n")
	w("  without policy enforcement (no conntrack, no source check): the cost of turning it on at all.\n")
	w("  The 198 (then 998) other\n")
	w("  endpoints are published in etcd for both nodes without containers: their addresses fill the\n")
	w("  rules as real ones would. Policies: 48 of the shapes in `policy.SyntheticWorld` plus 2 isolating\n")
	w("  the measured containers (the server admits the client on 5201, the client may reach only it).\n")
	w("- Rebuild is weftd's `weft_policy_last_apply_seconds`; etcd write to enforcement is measured by\n")
	w("  polling both nodes' `weft_policy_revision` (10 ms), so it includes the view debounce (50 ms).\n")
	w("%s\n", sectionEnd)
	return s.String()
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// updateDocs replaces the policy section of docs/benchmarks.md (or appends it).
func updateDocs(path, section string) error {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	doc := string(data)
	if i := strings.Index(doc, sectionBegin); i >= 0 {
		if j := strings.Index(doc[i:], sectionEnd); j >= 0 {
			doc = doc[:i] + strings.TrimSuffix(section, "\n") + doc[i+j+len(sectionEnd):]
			return os.WriteFile(path, []byte(doc), 0o644)
		}
	}
	doc = strings.TrimRight(doc, "\n") + "\n\n" + section
	return os.WriteFile(path, []byte(doc), 0o644)
}
