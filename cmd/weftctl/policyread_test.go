package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const twoPolicies = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-all
  namespace: x
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-web
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {team: a}
    ports:
    - port: 80
`

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// endless is standard input that never ends (like /dev/zero).
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// Issue 25 item 5: policy apply reads at most maxManifest bytes, from a
// file, a device or standard input (-f /dev/zero read until it was killed
// at 1.47 GB), and says so.
func TestPolicyApplyReadIsBounded(t *testing.T) {
	code, _, stderr := weftctl(t, "--etcd-endpoints=http://127.0.0.1:1", "policy", "apply", "-f", "/dev/zero")
	if code == 0 || !strings.Contains(stderr, "input larger than 3145728 bytes (3 MiB)") {
		t.Fatalf("-f /dev/zero: code %d, stderr %q", code, stderr)
	}
	if _, err := readPolicies("-", endless{}); err == nil || !strings.Contains(err.Error(), "larger than 3145728 bytes") {
		t.Fatalf("endless standard input: %v", err)
	}
	big := "# " + strings.Repeat("x", maxManifest) + "\n" + twoPolicies
	if _, err := readPolicies(writeFile(t, big), nil); err == nil || !strings.Contains(err.Error(), "3 MiB") {
		t.Fatalf("a file over the bound: %v", err)
	}
	if ps, err := readPolicies(writeFile(t, twoPolicies), nil); err != nil || len(ps) != 2 {
		t.Fatalf("a file under the bound: %v %v", ps, err)
	}
}
