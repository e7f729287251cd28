package policy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

const upstreamExample = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
`

func TestParseUpstreamExample(t *testing.T) {
	nps, err := ParseManifests([]byte(upstreamExample))
	if err != nil {
		t.Fatal(err)
	}
	if len(nps) != 1 {
		t.Fatalf("got %d policies, want 1", len(nps))
	}
	np := nps[0]
	if np.Namespace != "default" || np.Name != "test-network-policy" {
		t.Errorf("name %s/%s", np.Namespace, np.Name)
	}
	if got := np.Spec.Ingress[0].From[0].IPBlock.Except[0]; got != "172.17.1.0/24" {
		t.Errorf("except %q", got)
	}
	if got := np.Spec.Egress[0].Ports[0].Port.IntVal; got != 5978 {
		t.Errorf("egress port %d", got)
	}
	if len(np.Spec.PolicyTypes) != 2 {
		t.Errorf("policyTypes %v", np.Spec.PolicyTypes)
	}
}

func TestParseDocumentsAndDefaults(t *testing.T) {
	cases := []struct {
		name  string
		input string
		want  []string // namespace/name
	}{
		{"yaml multi with comments and empty docs", `
# leading comment
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a, namespace: x}
spec: {podSelector: {}}
---
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b}
spec: {podSelector: {}}
`, []string{"x/a", "default/b"}},
		{"json object", `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"a","namespace":"y"},"spec":{"podSelector":{}}}`, []string{"y/a"}},
		{"json stream", `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"a"},"spec":{"podSelector":{}}}
{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"b"},"spec":{"podSelector":{}}}`, []string{"default/a", "default/b"}},
		{"json array", `[{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"a"},"spec":{"podSelector":{}}}]`, []string{"default/a"}},
		{"kubectl List", `
apiVersion: v1
kind: List
metadata: {}
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: a, namespace: z, resourceVersion: "12", uid: 3c1e}
  spec: {podSelector: {}}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: b, namespace: z}
  spec: {podSelector: {}}
`, []string{"z/a", "z/b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nps, err := ParseManifests([]byte(tc.input))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, np := range nps {
				got = append(got, np.Namespace+"/"+np.Name)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseAppliesAPIServerDefaults(t *testing.T) {
	nps, err := ParseManifests([]byte(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a}
spec:
  podSelector: {}
  egress:
  - ports: [{port: 53}]
`))
	if err != nil {
		t.Fatal(err)
	}
	np := nps[0]
	if got := np.Spec.PolicyTypes; len(got) != 2 || got[0] != networkingv1.PolicyTypeIngress || got[1] != networkingv1.PolicyTypeEgress {
		t.Errorf("policyTypes %v, want [Ingress Egress]", got)
	}
	if p := np.Spec.Egress[0].Ports[0].Protocol; p == nil || *p != corev1.ProtocolTCP {
		t.Errorf("protocol %v, want TCP", p)
	}
	nps, err = ParseManifests([]byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"a"},"spec":{"podSelector":{}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := nps[0].Spec.PolicyTypes; len(got) != 1 || got[0] != networkingv1.PolicyTypeIngress {
		t.Errorf("policyTypes %v, want [Ingress]", got)
	}
}

func TestParseRefuses(t *testing.T) {
	const head = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: x}\n"
	cases := []struct {
		name, input, wantErr string
	}{
		{"empty", "  \n", "empty input"},
		{"only comments", "# nothing\n---\n", "no NetworkPolicy"},
		{"unknown field", head + "spec: {podSelector: {}, ingres: []}", `unknown field "ingres"`},
		{"unknown top field", head + "spec: {podSelector: {}}\nstatus: {}", `unknown field "status"`},
		{"duplicate field", head + "spec:\n  podSelector: {}\n  podSelector: {}\n", "already set"},
		{"wrong kind", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n", `kind "Pod"`},
		{"wrong version", "apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: a}\nspec: {podSelector: {}}", "extensions/v1beta1"},
		{"named port", head + "spec:\n  podSelector: {}\n  ingress: [{ports: [{port: http}]}]", "named ports are not supported"},
		{"numeric string port", head + "spec:\n  podSelector: {}\n  ingress: [{ports: [{port: \"80\"}]}]", "spec.ingress[0].ports[0].port"},
		{"port zero", head + "spec:\n  podSelector: {}\n  ingress: [{ports: [{port: 0}]}]", "spec.ingress[0].ports[0].port"},
		{"port too big", head + "spec:\n  podSelector: {}\n  egress: [{ports: [{port: 65536}]}]", "spec.egress[0].ports[0].port"},
		{"endPort without port", head + "spec:\n  podSelector: {}\n  ingress: [{ports: [{endPort: 90}]}]", "must be specified when endPort is specified"},
		{"endPort below port", head + "spec:\n  podSelector: {}\n  ingress: [{ports: [{port: 90, endPort: 80}]}]", "greater than or equal"},
		{"bad protocol", head + "spec:\n  podSelector: {}\n  ingress: [{ports: [{protocol: ICMP, port: 1}]}]", "Unsupported value: \"ICMP\""},
		{"empty peer", head + "spec:\n  podSelector: {}\n  ingress: [{from: [{}]}]", "must specify a peer"},
		{"ipBlock with selector", head + "spec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]", "may not specify both ipBlock and another peer"},
		{"bad cidr", head + "spec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]", "spec.ingress[0].from[0].ipBlock.cidr"},
		{"except outside", head + "spec:\n  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}]", "strict subset"},
		{"IPv6 except outside", head + "spec:\n  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: \"fd10:244::/56\", except: [\"fd10:245::/64\"]}}]}]", "strict subset"},
		{"IPv6 except equal", head + "spec:\n  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: \"fd10:244::/56\", except: [\"fd10:244::/56\"]}}]}]", "strict subset"},
		{"IPv4 except in IPv6 cidr", head + "spec:\n  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: \"::/0\", except: [10.0.0.0/8]}}]}]", "strict subset"},
		{"IPv6 except in IPv4 cidr", head + "spec:\n  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0, except: [\"fd00::/8\"]}}]}]", "strict subset"},
		{"bad IPv6 cidr", head + "spec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: \"fd10::/129\"}}]}]", "spec.ingress[0].from[0].ipBlock.cidr"},
		{"except equal", head + "spec:\n  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.0.0/16]}}]}]", "strict subset"},
		{"bad selector operator", head + "spec:\n  podSelector: {matchExpressions: [{key: a, operator: Near}]}", "spec.podSelector.matchExpressions[0].operator"},
		{"In without values", head + "spec:\n  podSelector: {matchExpressions: [{key: a, operator: In}]}", "spec.podSelector.matchExpressions[0].values"},
		{"bad label value", head + "spec:\n  podSelector: {matchLabels: {a: \"b c\"}}", "spec.podSelector.matchLabels"},
		{"bad policy type", head + "spec:\n  podSelector: {}\n  policyTypes: [Inbound]", "spec.policyTypes[0]"},
		{"duplicate policy type", head + "spec:\n  podSelector: {}\n  policyTypes: [Ingress, Ingress]", "Duplicate value"},
		{"bad name", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: Bad_Name}\nspec: {podSelector: {}}", "metadata.name"},
		{"no name", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {}\nspec: {podSelector: {}}", "metadata.name"},
		{"same policy twice", head + "spec: {podSelector: {}}\n---\n" + head + "spec: {podSelector: {}}", "given twice"},
		{"bad second document loses the first", head + "spec: {podSelector: {}}\n---\n" + head + "spec: {podSelector: {}, x: 1}", "document 2"},
		{"bad json", `{"apiVersion": `, "reading JSON document 1"},
		{"list item bad", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {name: a}\n  spec: {podSelector: {}, ports: []}\n", "items[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nps, err := ParseManifests([]byte(tc.input))
			if err == nil {
				t.Fatalf("accepted %d policies, want error containing %q", len(nps), tc.wantErr)
			}
			if nps != nil {
				t.Errorf("returned %d policies along with the error", len(nps))
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}
