package policy

import (
	"strings"
	"testing"
)

// manifest is a NetworkPolicy with the given metadata and spec lines
// (already indented by two spaces).
func manifest(metadata, spec string) string {
	return "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n" + metadata + "spec:\n" + spec
}

const denyAllSpec = "  podSelector: {}\n  policyTypes: [Ingress]\n"

// Issue 25 item 8, issue 24 item 9: what YAML 1.1 types as a boolean, a
// number or null in a place that wants a string is refused, naming the
// field, instead of landing as "true", "31", "1000" or "" (unquoted
// namespace: y was stored and enforced as namespace "true").
func TestParseRefusesNonStringScalars(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"namespace y", manifest("  name: deny\n  namespace: y\n", denyAllSpec), "metadata.namespace: YAML reads this value as the boolean true"},
		{"namespace on", manifest("  name: deny\n  namespace: on\n", denyAllSpec), "metadata.namespace: YAML reads this value as the boolean true"},
		{"namespace no", manifest("  name: deny\n  namespace: no\n", denyAllSpec), "the boolean false"},
		{"name yes", manifest("  name: yes\n", denyAllSpec), "metadata.name: YAML reads this value as the boolean true"},
		{"name number", manifest("  name: 0777\n", denyAllSpec), "metadata.name: YAML reads this value as the number 511"},
		{"label key on", manifest("  name: a\n  labels:\n    on: x\n", denyAllSpec), "metadata.labels: YAML reads a key as the boolean true"},
		{"label value hex", manifest("  name: a\n  labels:\n    v: 0x1F\n", denyAllSpec), `metadata.labels["v"]: YAML reads this value as the number 31`},
		{"label value float", manifest("  name: a\n  labels:\n    v: 1e3\n", denyAllSpec), `metadata.labels["v"]: YAML reads this value as the number 1000`},
		{"label value null", manifest("  name: a\n  labels:\n    v: ~\n", denyAllSpec), `metadata.labels["v"]: YAML reads this value as null`},
		{"annotation number", manifest("  name: a\n  annotations:\n    v: 12\n", denyAllSpec), `metadata.annotations["v"]: YAML reads this value as the number 12`},
		{"matchLabels value", manifest("  name: a\n", "  podSelector:\n    matchLabels:\n      enabled: yes\n"), `spec.podSelector.matchLabels["enabled"]: YAML reads this value as the boolean true`},
		{"matchLabels key", manifest("  name: a\n", "  podSelector:\n    matchLabels:\n      off: a\n"), "spec.podSelector.matchLabels: YAML reads a key as the boolean false"},
		{"matchExpressions values", manifest("  name: a\n", "  podSelector:\n    matchExpressions:\n    - {key: tier, operator: In, values: [web, 1.0]}\n"), "spec.podSelector.matchExpressions[0].values[1]: YAML reads this value as the number 1"},
		{"matchExpressions key", manifest("  name: a\n", "  podSelector:\n    matchExpressions:\n    - {key: y, operator: Exists}\n"), "spec.podSelector.matchExpressions[0].key: YAML reads this value as the boolean true"},
		{"namespaceSelector", manifest("  name: a\n", "  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels:\n          team: on\n"),
			`spec.ingress[0].from[0].namespaceSelector.matchLabels["team"]: YAML reads this value as the boolean true`},
		{"egress podSelector", manifest("  name: a\n", "  podSelector: {}\n  egress:\n  - to:\n    - podSelector:\n        matchLabels:\n          v: 2\n"),
			`spec.egress[0].to[0].podSelector.matchLabels["v"]: YAML reads this value as the number 2`},
		{"in a List", "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(manifest("  name: a\n  namespace: yes\n", denyAllSpec), "\n", "\n  "), "items[0].metadata.namespace: YAML reads this value as the boolean true"},
		{"JSON", `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"a","namespace":true},"spec":{"podSelector":{}}}`, "metadata.namespace: YAML reads this value as the boolean true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nps, err := ParseManifests([]byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted as %s/%s labels %v selector %v", nps[0].Namespace, nps[0].Name, nps[0].Labels, nps[0].Spec.PodSelector)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "quote it") {
				t.Fatalf("error %q, want %q and a hint to quote", err, tc.want)
			}
		})
	}
}

// Quoted, the same values are the strings their author meant; numbers
// where numbers belong (ports) and a null timestamp (kubectl create
// --dry-run -o yaml writes one) stay accepted.
func TestParseAcceptsQuotedScalars(t *testing.T) {
	doc := `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: "yes"
  namespace: 'y'
  creationTimestamp: null
  labels:
    "on": "0x1F"
    v: "1e3"
spec:
  podSelector:
    matchLabels:
      e: "1e3"
    matchExpressions:
    - {key: "y", operator: In, values: ["1.0", "on"]}
  ingress:
  - ports:
    - port: 80
      endPort: 90
    - port: 8080
`
	nps, err := ParseManifests([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	np := nps[0]
	if np.Name != "yes" || np.Namespace != "y" || np.Labels["on"] != "0x1F" || np.Labels["v"] != "1e3" ||
		np.Spec.PodSelector.MatchLabels["e"] != "1e3" || np.Spec.PodSelector.MatchExpressions[0].Key != "y" ||
		strings.Join(np.Spec.PodSelector.MatchExpressions[0].Values, ",") != "1.0,on" {
		t.Fatalf("parsed %+v", np)
	}
	if np.Spec.Ingress[0].Ports[0].Port.IntVal != 80 || *np.Spec.Ingress[0].Ports[0].EndPort != 90 {
		t.Fatalf("ports %+v", np.Spec.Ingress[0].Ports)
	}
}
