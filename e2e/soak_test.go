//go:build soak

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/weftnet/weft/testbed/cluster"
)

// soakDurationEnv sets the soak's length (a Go duration, default 10m):
// WEFT_SOAK_DURATION=1m make soak.
const soakDurationEnv = "WEFT_SOAK_DURATION"

func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv(soakDurationEnv)
	if v == "" {
		return 10 * time.Minute
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 30*time.Second {
		t.Fatalf("%s=%q: want a duration of at least 30s", soakDurationEnv, v)
	}
	return d
}

// flowTally adds up the TCP flows of the soak.
type flowTally struct {
	flows, failed  atomic.Int64
	sent, received atomic.Int64
	mu             sync.Mutex
	errs           []string
}

func (f *flowTally) fail(err error) {
	f.failed.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) < 10 {
		f.errs = append(f.errs, err.Error())
	}
}

// soakFlow sends size bytes over TCP from src to dst:port with the sink
// and source roles and returns the byte counts each side saw.
func soakFlow(ctx context.Context, self string, src, dst *cluster.Container, port int, size int64) (sent, received int64, err error) {
	addr := net.JoinHostPort(dst.IP.String(), strconv.Itoa(port))
	sinkCmd := dst.NS.Command(ctx, "env", roleEnv+"=sink", self, addr)
	stdout, err := sinkCmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	if err := sinkCmd.Start(); err != nil {
		return 0, 0, err
	}
	defer sinkCmd.Wait()
	defer sinkCmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "listening" {
		return 0, 0, fmt.Errorf("sink on %s did not start", addr)
	}
	out, err := src.NS.Run(ctx, "env", roleEnv+"=source", self, addr, strconv.FormatInt(size, 10))
	if err != nil {
		return 0, 0, fmt.Errorf("source to %s: %w", addr, err)
	}
	if !lines.Scan() {
		return 0, 0, fmt.Errorf("sink on %s printed nothing", addr)
	}
	got, want := lines.Text(), strings.TrimSpace(out)
	sent, received = bytesOf(want), bytesOf(got)
	if got != want {
		return sent, received, fmt.Errorf("flow to %s: sent %s, received %s", addr, want, got)
	}
	return sent, received, nil
}

func bytesOf(line string) int64 {
	f := strings.Fields(line)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimPrefix(f[0], "bytes="), 10, 64)
	return n
}

// procSample is one reading of a daemon's goroutines and memory.
type procSample struct {
	at         time.Duration
	goroutines float64
	rssMB      float64
	heapMB     float64
}

// Mixed traffic (TCP flows on three paths, pings, UDP bursts) through three
// hosts for WEFT_SOAK_DURATION (10 minutes by default), with one daemon
// killed and restarted and etcd stopped and started along the way. Every
// TCP flow arrives byte-identical (bytes sent = bytes received), and the
// daemons' goroutines and memory stay flat.
func TestSoak(t *testing.T) {
	total := soakDuration(t)
	c, e := newEtcdCluster(t, 3, cluster.Options{})
	var ctrs []*cluster.Container
	for _, n := range c.Nodes {
		ctrs = append(ctrs, addContainer(t, n, "ws"))
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), total+5*time.Minute)
	defer cancel()
	start := time.Now()
	deadline := start.Add(total)

	var tally flowTally
	var wg sync.WaitGroup
	for i := range ctrs {
		src, dst := ctrs[i], ctrs[(i+1)%len(ctrs)]
		port := 5301 + i
		wg.Go(func() {
			for size := int64(4 << 20); time.Now().Before(deadline); size = size%(48<<20) + 4<<20 {
				sent, received, err := soakFlow(ctx, self, src, dst, port, size)
				tally.flows.Add(1)
				tally.sent.Add(sent)
				tally.received.Add(received)
				if err != nil {
					tally.fail(err)
				}
			}
		})
	}
	var udpSent, udpReceived atomic.Int64
	wg.Go(func() {
		// UDP bursts from container 2 to container 1 every few seconds.
		for time.Now().Before(deadline.Add(-5 * time.Second)) {
			cnt := ctrs[0].NS.Command(ctx, "env", roleEnv+"=udpcount", self, net.JoinHostPort(ctrs[0].IP.String(), "7000"), "3")
			out, err := cnt.StdoutPipe()
			if err != nil || cnt.Start() != nil {
				return
			}
			lines := bufio.NewScanner(out)
			lines.Scan()
			flood, _ := ctrs[1].NS.Run(ctx, "env", roleEnv+"=udpblast", self, net.JoinHostPort(ctrs[0].IP.String(), "7000"), "2000", "736f616b")
			if strings.HasPrefix(strings.TrimSpace(flood), "sent=") {
				udpSent.Add(2000)
			}
			if lines.Scan() {
				n, _ := strconv.ParseInt(strings.TrimPrefix(lines.Text(), "received="), 10, 64)
				udpReceived.Add(n)
			}
			cnt.Wait()
			time.Sleep(2 * time.Second)
		}
	})
	waitPing := startPing(t, ctrs[0].NS, ctrs[2].IP, 100*time.Millisecond, total)

	samples := map[int][]procSample{}
	sample := func() {
		for _, n := range c.Nodes {
			code, body, err := n.Get(ctx, "/metrics")
			if err != nil || code != 200 {
				continue // node 2 while restarting
			}
			fams := parseMetrics(t, body)
			samples[n.Index] = append(samples[n.Index], procSample{
				at:         time.Since(start),
				goroutines: gauge(fams, "go_goroutines"),
				rssMB:      gauge(fams, "process_resident_memory_bytes") / (1 << 20),
				heapMB:     gauge(fams, "go_memstats_heap_inuse_bytes") / (1 << 20),
			})
		}
	}
	restartAt, bounceAt := start.Add(total/3), start.Add(2*total/3)
	restarted, bounced := false, false
	var restartedAt time.Duration
	ticker := time.NewTicker(5 * time.Second)
	defer ticker.Stop()
	for time.Now().Before(deadline) {
		sample()
		switch {
		case !restarted && time.Now().After(restartAt):
			restarted = true
			n := c.Nodes[1]
			if err := n.Stop(syscall.SIGKILL, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			startNodes(t, []*cluster.Node{n})
			restartedAt = time.Since(start)
			t.Logf("%v: weftd on node 2 killed and restarted", time.Since(start).Round(time.Second))
		case !bounced && time.Now().After(bounceAt):
			bounced = true
			e.stop()
			time.Sleep(10 * time.Second)
			e.start()
			t.Logf("%v: etcd stopped for 10 s and started again", time.Since(start).Round(time.Second))
		}
		<-ticker.C
	}
	wg.Wait()
	sample()
	sent, received := waitPing()

	t.Logf("soak of %v: %d TCP flows, %d bytes sent, %d bytes received, %d failed",
		total, tally.flows.Load(), tally.sent.Load(), tally.received.Load(), tally.failed.Load())
	t.Logf("ping: %d sent, %d received; UDP bursts: %d sent, %d received", sent, received, udpSent.Load(), udpReceived.Load())
	for _, msg := range tally.errs {
		t.Errorf("flow: %s", msg)
	}
	if tally.flows.Load() < 3 || tally.sent.Load() == 0 || tally.sent.Load() != tally.received.Load() {
		t.Errorf("TCP bytes sent %d != received %d", tally.sent.Load(), tally.received.Load())
	}
	if !restarted || !bounced {
		t.Errorf("soak too short for its faults (restart %v, etcd bounce %v)", restarted, bounced)
	}
	if err := checkFlat(t, samples, restartedAt); err != nil {
		t.Error(err)
	}
}

// checkFlat logs each daemon's goroutines and memory at the start (after
// a warm-up) and the end, and fails if they grew beyond noise.
func checkFlat(t *testing.T, samples map[int][]procSample, restartedAt time.Duration) error {
	t.Helper()
	var errs []error
	for idx := range len(samples) {
		s := samples[idx]
		if idx == 1 {
			// Node 2 was restarted: judge its second life only.
			s = slices.DeleteFunc(slices.Clone(s), func(x procSample) bool { return x.at <= restartedAt })
		}
		if len(s) < 4 {
			errs = append(errs, fmt.Errorf("node %d: only %d samples", idx+1, len(s)))
			continue
		}
		first, last := s[len(s)/4], s[len(s)-1]
		maxG, maxRSS := 0.0, 0.0
		for _, x := range s {
			maxG, maxRSS = max(maxG, x.goroutines), max(maxRSS, x.rssMB)
		}
		t.Logf("node %d: goroutines %.0f -> %.0f (max %.0f), RSS %.1f -> %.1f MiB (max %.1f), heap in use %.1f -> %.1f MiB",
			idx+1, first.goroutines, last.goroutines, maxG, first.rssMB, last.rssMB, maxRSS, first.heapMB, last.heapMB)
		if last.goroutines > first.goroutines+20 {
			errs = append(errs, fmt.Errorf("node %d: goroutines grew from %.0f to %.0f", idx+1, first.goroutines, last.goroutines))
		}
		if last.rssMB > first.rssMB*1.5+16 {
			errs = append(errs, fmt.Errorf("node %d: RSS grew from %.1f to %.1f MiB", idx+1, first.rssMB, last.rssMB))
		}
	}
	return errors.Join(errs...)
}

func parseMetrics(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}
