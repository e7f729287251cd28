//go:build !unit

package workload_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/logtest"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/etcdtest"
)

// Issue 25 item 7: 5,000 malformed attachment values logged 5,050 lines at
// every listing, and junk values of 100 KB under endpoints/, namespaces/
// and policies/ were logged whole. Now: a few lines per 30 s, each with
// the key and the reason cut short, the rest counted into one line; the
// counts by kind in MalformedValues.
func TestMalformedValuesLoggedRateLimited(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	logs := &logtest.Counter{}
	m := newStore(t, cli, subnet.Options{Logger: slog.New(logs)})
	ctx := etcdtest.Context(t, 2*time.Minute)
	var ops []clientv3.Op
	for i := range 5000 {
		ops = append(ops, clientv3.OpPut(fmt.Sprintf("/weft/network/endpoints/10.244.%d.%d", i/250, i%250+1), `{"ip":"junk`+fmt.Sprint(i)+`"`))
	}
	for len(ops) > 0 {
		n := min(len(ops), 128)
		if _, err := cli.Txn(ctx).Then(ops[:n]...).Commit(); err != nil {
			t.Fatal(err)
		}
		ops = ops[n:]
	}
	big := strings.Repeat("B", 100<<10)
	etcdtest.Put(t, cli, "/weft/network/endpoints/10.250.0.1", `{"ip":"10.250.0.1","namespace":"`+big+`"}`)
	etcdtest.Put(t, cli, "/weft/network/endpoints/"+big, `{}`)
	etcdtest.Put(t, cli, "/weft/network/namespaces/x", `{"labels":{"a":"`+big+`"}}`)
	etcdtest.Put(t, cli, "/weft/network/namespaces/"+strings.Repeat("n", 100<<10), `{}`)
	etcdtest.Put(t, cli, "/weft/network/policies/x/junk", `{"spec":"`+big)
	etcdtest.Put(t, cli, "/weft/network/policies/"+strings.Repeat("P", 100<<10)+"/p", `{}`)

	for range 3 { // three listings, as three restarts would do
		if _, err := m.ListAttachments(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := m.ListNamespaces(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := m.ListPolicies(ctx, ""); err != nil {
			t.Fatal(err)
		}
	}
	lines := logs.Lines()
	for _, l := range lines {
		if len(l) > 1024 {
			t.Errorf("a log line of %d bytes: %.300s...", len(l), l)
		}
	}
	if len(lines) > 10 {
		t.Errorf("%d log lines for 3 listings of 5,005 malformed values, want at most 10 (5 a 30 s, one summary):\n%s", len(lines), strings.Join(lines[:20], "\n"))
	}
	got := m.MalformedValues()
	if want := [3]uint64{3 * 5002, 3 * 2, 3 * 2}; got != want {
		t.Errorf("MalformedValues = %v, want %v (endpoint, namespace, policy)", got, want)
	}
	if logs.Containing("kind=endpoint key=\"/weft/network/endpoints/10.244.") == 0 {
		t.Errorf("no line names a key:\n%s", strings.Join(lines, "\n"))
	}
	t.Logf("%d lines, longest %d bytes; counts %v", len(lines), longest(lines), got)
}

func longest(lines []string) int {
	n := 0
	for _, l := range lines {
		n = max(n, len(l))
	}
	return n
}
