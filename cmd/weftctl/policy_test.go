//go:build !unit

package main

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/etcdtest"
	"github.com/weftnet/weft/workload"
)

func TestPolicyCommands(t *testing.T) {
	srv := etcdtest.Start(t)
	ep := "--etcd-endpoints=" + srv.Endpoints()[0]

	code, stdout, stderr := weftctl(t, ep, "policy", "apply", "-f", writeFile(t, twoPolicies))
	if code != 0 || stdout != "networkpolicy x/deny-all created\nnetworkpolicy default/allow-web created\n" {
		t.Fatalf("apply: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// The same file again writes nothing; one policy changed is the only write.
	code, stdout, stderr = weftctl(t, ep, "policy", "apply", "-f", writeFile(t, twoPolicies))
	if code != 0 || stdout != "networkpolicy x/deny-all unchanged\nnetworkpolicy default/allow-web unchanged\n" {
		t.Fatalf("apply again: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, _ = weftctl(t, ep, "policy", "list")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[1], "default") || !strings.Contains(lines[1], "allow-web") ||
		!strings.Contains(lines[2], "deny-all") || !strings.Contains(lines[2], "Ingress") || lines[3] != "2 policies" {
		t.Fatalf("list: code %d\n%s", code, stdout)
	}
	// get returns the manifest as stored, defaults filled in.
	code, stdout, stderr = weftctl(t, ep, "policy", "get", "allow-web")
	var np struct {
		APIVersion, Kind string
		Metadata         struct{ Name, Namespace string }
		Spec             struct {
			Ingress []struct {
				Ports []struct {
					Protocol string
					Port     int
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(stdout), &np); code != 0 || err != nil {
		t.Fatalf("get: code %d, %v, stderr %q", code, err, stderr)
	}
	if np.APIVersion != "networking.k8s.io/v1" || np.Kind != "NetworkPolicy" || np.Metadata.Namespace != "default" ||
		len(np.Spec.Ingress) != 1 || np.Spec.Ingress[0].Ports[0].Port != 80 || np.Spec.Ingress[0].Ports[0].Protocol != "TCP" {
		t.Fatalf("get: %s", stdout)
	}
	code, stdout, stderr = weftctl(t, ep, "policy", "apply", "-f", writeFile(t, strings.Replace(twoPolicies, "port: 80", "port: 8080", 1)))
	if code != 0 || stdout != "networkpolicy x/deny-all unchanged\nnetworkpolicy default/allow-web configured\n" {
		t.Fatalf("apply with allow-web changed: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, stdout, _ := weftctl(t, ep, "policy", "get", "x/deny-all"); code != 0 || !strings.Contains(stdout, `"deny-all"`) {
		t.Fatalf("get x/deny-all: %d %s", code, stdout)
	}
	if code, _, _ := weftctl(t, ep, "policy", "get", "deny-all", "-n", "x"); code != 0 {
		t.Fatalf("get -n x deny-all: %d", code)
	}
	code, stdout, _ = weftctl(t, ep, "policy", "list", "-n", "x", "-o", "json")
	var list struct {
		Kind  string
		Items []json.RawMessage
	}
	if err := json.Unmarshal([]byte(stdout), &list); code != 0 || err != nil || list.Kind != "NetworkPolicyList" || len(list.Items) != 1 {
		t.Fatalf("list -n x -o json: %d %v %s", code, err, stdout)
	}

	// Anything not honourable is refused and nothing is written, even the
	// good documents of the same file.
	before := stdoutOf(t, ep, "policy", "list")
	for content, want := range map[string]string{
		strings.Replace(twoPolicies, "allow-web", "allow-new", 1) + "---\n" + strings.Replace(twoPolicies[:strings.Index(twoPolicies, "---")], "deny-all", "other", 1) + "  bogusField: 1\n": "bogusField",
		strings.Replace(twoPolicies, "port: 80", "port: http", 1): "http",
		"": "empty",
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}`: "Pod",
	} {
		code, _, stderr := weftctl(t, ep, "policy", "apply", "-f", writeFile(t, content))
		if code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "nothing applied") {
			t.Errorf("apply of a bad file: code %d, stderr %q (want %q named)", code, stderr, want)
		}
	}
	if after := stdoutOf(t, ep, "policy", "list"); after != before {
		t.Fatalf("a refused apply changed the policies:\n%s\n->\n%s", before, after)
	}
	if code, _, stderr := weftctl(t, ep, "policy", "apply", "-n", "x", "-f", writeFile(t, twoPolicies)); code != 1 || !strings.Contains(stderr, "metadata.namespace") {
		t.Fatalf("apply -n: %d %q", code, stderr)
	}
	if code, _, stderr := weftctl(t, ep, "policy", "apply"); code != 1 || !strings.Contains(stderr, "-f FILE") {
		t.Fatalf("apply without -f: %d %q", code, stderr)
	}

	if code, stdout, _ := weftctl(t, ep, "policy", "delete", "x/deny-all"); code != 0 || stdout != "networkpolicy x/deny-all deleted\n" {
		t.Fatalf("delete: %d %q", code, stdout)
	}
	if code, _, stderr := weftctl(t, ep, "policy", "delete", "x/deny-all"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Fatalf("delete again: %d %q", code, stderr)
	}
	if code, _, stderr := weftctl(t, ep, "policy", "get", "x/deny-all"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Fatalf("get deleted: %d %q", code, stderr)
	}
}

func stdoutOf(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := weftctl(t, args...)
	if code != 0 {
		t.Fatalf("weftctl %v: code %d, stderr %q", args, code, stderr)
	}
	return stdout
}

func TestNamespaceAndEndpointsCommands(t *testing.T) {
	srv := etcdtest.Start(t)
	ep := "--etcd-endpoints=" + srv.Endpoints()[0]

	if out := stdoutOf(t, ep, "namespace", "label", "x", "team=a", "example.com/tier=web"); out != "namespace x labelled: example.com/tier=web,kubernetes.io/metadata.name=x,team=a\n" {
		t.Fatalf("label: %q", out)
	}
	if out := stdoutOf(t, ep, "namespace", "label", "x", "team-", "env=prod"); out != "namespace x labelled: env=prod,example.com/tier=web,kubernetes.io/metadata.name=x\n" {
		t.Fatalf("relabel: %q", out)
	}
	for _, bad := range [][]string{
		{"namespace", "label", "X", "a=b"},
		{"namespace", "label", "x", "bad key=v"},
		{"namespace", "label", "x", "novalue"},
		{"namespace", "label", "x", "kubernetes.io/metadata.name=y"},
		{"namespace", "label", "x"},
	} {
		if code, _, stderr := weftctl(t, append([]string{ep}, bad...)...); code == 0 || stderr == "" {
			t.Errorf("%v: code %d", bad, code)
		}
	}
	stdoutOf(t, ep, "namespace", "label", "y", "team=b")
	out := stdoutOf(t, ep, "namespace", "list")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[1], "x ") || !strings.Contains(lines[1], "env=prod") || !strings.Contains(lines[2], "team=b") {
		t.Fatalf("namespace list:\n%s", out)
	}
	stdoutOf(t, ep, "namespace", "delete", "y")
	if code, _, _ := weftctl(t, ep, "namespace", "delete", "y"); code != 1 {
		t.Fatal("deleting a namespace twice succeeded")
	}

	// Endpoints published by a node show up.
	if out := stdoutOf(t, ep, "endpoints"); out != "IP  NAMESPACE  POD  LABELS  NODE\n0 endpoints\n" {
		t.Fatalf("no endpoints: %q", out)
	}
	m := workload.New(subnet.NewManager(srv.Client(t), subnet.Options{}), nil)
	pub := m.NewPublisher("192.0.2.1", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pub.Start(ctx, []workload.Attachment{
		{IP: netip.MustParseAddr("10.244.1.2"), Namespace: "x", Pod: "a", Labels: map[string]string{"app": "web"}},
		{IP: netip.MustParseAddr("10.244.1.3"), Namespace: "y"},
	}); err != nil {
		t.Fatal(err)
	}
	out = stdoutOf(t, ep, "namespace", "list")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[2], "y ") || !strings.HasSuffix(lines[2], "kubernetes.io/metadata.name=y") {
		t.Fatalf("namespace list with y named only by an endpoint:\n%s", out)
	}
	out = stdoutOf(t, ep, "endpoints")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || strings.Join(strings.Fields(lines[1]), " ") != "10.244.1.2 x a app=web 192.0.2.1" ||
		strings.Join(strings.Fields(lines[2]), " ") != "10.244.1.3 y - <none> 192.0.2.1" {
		t.Fatalf("endpoints:\n%s", out)
	}
	var eps []workload.Attachment
	if err := json.Unmarshal([]byte(stdoutOf(t, ep, "endpoints", "-n", "x", "-o", "json")), &eps); err != nil || len(eps) != 1 || eps[0].Labels["app"] != "web" {
		t.Fatalf("endpoints -n x -o json: %v %+v", err, eps)
	}
}

// Issue 24 item 9, issue 25 item 8: an unquoted `namespace: y` (a YAML
// 1.1 boolean) is refused with a hint to quote it, and nothing is stored;
// it used to be created as networkpolicy true/default-deny-ingress.
func TestPolicyApplyRefusesUnquotedBoolean(t *testing.T) {
	srv := etcdtest.Start(t)
	ep := "--etcd-endpoints=" + srv.Endpoints()[0]
	doc := strings.Replace(twoPolicies, "namespace: x", "namespace: y", 1)
	code, stdout, stderr := weftctl(t, ep, "policy", "apply", "-f", writeFile(t, doc))
	if code == 0 || !strings.Contains(stderr, "metadata.namespace: YAML reads this value as the boolean true") || !strings.Contains(stderr, "quote it") || !strings.Contains(stderr, "nothing applied") {
		t.Fatalf("apply: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, stdout, _ := weftctl(t, ep, "policy", "list"); strings.Contains(stdout, "deny-all") || strings.Contains(stdout, "allow-web") {
		t.Fatalf("something was stored: %s", stdout)
	}
	code, stdout, stderr = weftctl(t, ep, "policy", "apply", "-f", writeFile(t, strings.Replace(doc, "namespace: y", `namespace: "y"`, 1)))
	if code != 0 || !strings.Contains(stdout, "networkpolicy y/deny-all created") {
		t.Fatalf("quoted: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
