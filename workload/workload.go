package workload

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"github.com/weftnet/weft/k8sname"
)

// DefaultNamespace is the namespace of a container whose runtime names none.
const DefaultNamespace = "default"

// NamespaceNameLabel is the label every namespace carries with its own
// name, as Kubernetes sets it (kubernetes.io/metadata.name), so that
// namespaceSelector can pick a namespace by name.
const NamespaceNameLabel = "kubernetes.io/metadata.name"

// Attachment is one container interface, as the CNI plugin attached it
// (ContainerID, IfName) and its node publishes it for the policy engine:
// its address and the identity policy selects by (namespace, pod, labels).
// Stored under <prefix>/endpoints/<ip> (the directory keeps its name).
// "Endpoint" in weft means a peer's UDP address only.
type Attachment struct {
	IP        netip.Addr        `json:"ip"`
	Namespace string            `json:"namespace"`
	Pod       string            `json:"pod,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	// Node is the publishing node's public IP.
	Node string `json:"node"`
	// ContainerID and IfName name the CNI attachment.
	ContainerID string `json:"containerID,omitempty"`
	IfName      string `json:"ifName,omitempty"`
}

// Validate checks the fields the policy engine relies on.
func (e Attachment) Validate() error {
	// One address per attachment, of either family: a dual-stack container
	// is two attachments with the same identity, so that policy selects
	// both of its addresses.
	if !e.IP.Is4() && (!e.IP.Is6() || e.IP.Is4In6() || e.IP.Zone() != "") {
		return fmt.Errorf("endpoint: IP %v is not an IPv4 or IPv6 address", e.IP)
	}
	if err := ValidateNamespaceName(e.Namespace); err != nil {
		return fmt.Errorf("endpoint %s: %w", e.IP, err)
	}
	if e.Pod != "" {
		// The one pod-name rule; the CNI plugin reports no other names.
		if err := k8sname.ValidatePodName(e.Pod); err != nil {
			return fmt.Errorf("endpoint %s: %w", e.IP, err)
		}
	}
	if err := ValidateLabels(e.Labels); err != nil {
		return fmt.Errorf("endpoint %s: %w", e.IP, err)
	}
	if e.Node == "" {
		return fmt.Errorf("endpoint %s: no node", e.IP)
	}
	return nil
}

// Namespace is a namespace's labels. Labels always include
// NamespaceNameLabel=Name when read back.
type Namespace struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

// Policy is one stored NetworkPolicy: its namespace, name and the
// manifest as JSON (networking.k8s.io/v1, as the policy package parsed and
// re-encoded it).
type Policy struct {
	Namespace string
	Name      string
	JSON      []byte
	// Revision is the etcd revision that last wrote it (0 before storing).
	Revision int64
}

// Validate checks the key parts and that JSON is one JSON object.
func (p Policy) Validate() error {
	if err := ValidateNamespaceName(p.Namespace); err != nil {
		return fmt.Errorf("policy %s/%s: %w", p.Namespace, p.Name, err)
	}
	if err := validateObjectName("policy name", p.Name); err != nil {
		return fmt.Errorf("policy %s/%s: %w", p.Namespace, p.Name, err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(p.JSON, &obj); err != nil || obj == nil {
		return fmt.Errorf("policy %s/%s: not a JSON object", p.Namespace, p.Name)
	}
	return nil
}

// View is a consistent picture of everything policy depends on, at one
// etcd revision. Slices are sorted (attachments by IP, namespaces by name,
// policies by namespace then name) and must not be modified.
//
// Namespaces holds every namespace that is labelled, or named by an
// attachment or a policy; each has NamespaceNameLabel set.
type View struct {
	Attachments []Attachment
	Namespaces  []Namespace
	Policies    []Policy
	Revision    int64
}

var (
	// DNS-1123 subdomain: policy names, label key prefixes.
	dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// Label names and values (qualified name part).
	labelPartRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
)

// ValidateNamespaceName applies the one namespace rule
// (k8sname.ValidateNamespace, Kubernetes'), which the CNI plugin applies
// too; an empty name gets a message of its own.
func ValidateNamespaceName(name string) error {
	if name == "" {
		return errors.New("namespace: empty name")
	}
	return k8sname.ValidateNamespace(name)
}

func validateObjectName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%s: empty", what)
	}
	if len(name) > 253 || !dnsSubdomainRE.MatchString(name) {
		return fmt.Errorf("%s %q: want lower-case letters, digits, '-' and '.', starting and ending alphanumeric, at most 253 characters", what, name)
	}
	return nil
}

// ValidateLabelKey applies Kubernetes' rule for label keys: an optional
// DNS subdomain prefix and '/', then a name of at most 63 characters.
func ValidateLabelKey(key string) error {
	prefix, name, hasPrefix := strings.Cut(key, "/")
	if !hasPrefix {
		name, prefix = prefix, ""
	} else if prefix == "" || len(prefix) > 253 || !dnsSubdomainRE.MatchString(prefix) {
		return fmt.Errorf("label key %q: the prefix before '/' must be a DNS subdomain", key)
	}
	if name == "" || len(name) > 63 || !labelPartRE.MatchString(name) {
		return fmt.Errorf("label key %q: the name must be 1-63 letters, digits, '-', '_' or '.', starting and ending alphanumeric", key)
	}
	return nil
}

// ValidateLabelValue applies Kubernetes' rule for label values (empty, or
// at most 63 letters, digits, '-', '_', '.', starting and ending
// alphanumeric).
func ValidateLabelValue(key, value string) error {
	if value == "" {
		return nil
	}
	if len(value) > 63 || !labelPartRE.MatchString(value) {
		return fmt.Errorf("label %s=%q: the value must be at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric", key, value)
	}
	return nil
}

// ValidateLabels checks every key and value.
func ValidateLabels(labels map[string]string) error {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := ValidateLabelKey(k); err != nil {
			return err
		}
		if err := ValidateLabelValue(k, labels[k]); err != nil {
			return err
		}
	}
	return nil
}
