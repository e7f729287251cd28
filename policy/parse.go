package policy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// APIVersion and Kind are the only manifest type weft accepts.
const (
	APIVersion = "networking.k8s.io/v1"
	Kind       = "NetworkPolicy"
	// DefaultNamespace is given to a manifest without metadata.namespace, as
	// kubectl does with no namespace in its context.
	DefaultNamespace = "default"
)

// ParseManifests reads NetworkPolicy manifests as an operator would give them
// to Kubernetes: YAML or JSON, one or many documents (YAML "---" separated,
// concatenated JSON objects, a JSON array, or a List / NetworkPolicyList with
// items). Decoding is strict: an unknown or duplicate field is refused. Every
// policy is validated as Kubernetes' API server validates it, and anything
// weft cannot honour (a named port) is refused. Either all policies are
// returned or none, with an error naming the document and field.
//
// Returned policies carry the API server's defaults: namespace "default" when
// none is given, protocol TCP on ports without one, and policyTypes
// [Ingress] plus Egress when egress rules are present, when none are given.
func ParseManifests(data []byte) ([]networkingv1.NetworkPolicy, error) {
	docs, err := splitDocuments(data)
	if err != nil {
		return nil, err
	}
	var out []networkingv1.NetworkPolicy
	seen := map[string]int{}
	for i, doc := range docs {
		policies, err := parseDocument(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		for _, np := range policies {
			key := np.Namespace + "/" + np.Name
			if prev, dup := seen[key]; dup {
				return nil, fmt.Errorf("document %d: NetworkPolicy %s given twice (also in document %d)", i+1, key, prev)
			}
			seen[key] = i + 1
			out = append(out, np)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no NetworkPolicy in input")
	}
	return out, nil
}

// splitDocuments returns each document as JSON or YAML bytes.
func splitDocuments(data []byte) ([][]byte, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("empty input")
	}
	if trimmed[0] == '{' || trimmed[0] == '[' {
		return splitJSON(trimmed)
	}
	var docs [][]byte
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading YAML documents: %w", err)
		}
		j, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		if t := bytes.TrimSpace(j); len(t) == 0 || string(t) == "null" {
			continue // only comments or "---"
		}
		docs = append(docs, doc)
	}
}

func splitJSON(data []byte) ([][]byte, error) {
	var docs [][]byte
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading JSON document %d: %w", len(docs)+1, err)
		}
		raw = bytes.TrimSpace(raw)
		if raw[0] == '[' {
			var items []json.RawMessage
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, fmt.Errorf("reading JSON array: %w", err)
			}
			for _, item := range items {
				docs = append(docs, item)
			}
			continue
		}
		docs = append(docs, raw)
	}
}

// typeHeader is read first to dispatch on kind.
type typeHeader struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
}

func parseDocument(doc []byte) ([]networkingv1.NetworkPolicy, error) {
	var h typeHeader
	if err := yaml.Unmarshal(doc, &h); err != nil {
		return nil, fmt.Errorf("not a manifest: %w", err)
	}
	// A value YAML types as a boolean, number or null where a string is
	// wanted would be converted silently (namespace: y to "true").
	schema := reflect.TypeFor[networkingv1.NetworkPolicy]()
	if h.Kind == "List" || h.Kind == "NetworkPolicyList" {
		schema = reflect.TypeFor[networkingv1.NetworkPolicyList]()
	}
	if err := checkStringScalars(doc, schema); err != nil {
		return nil, err
	}
	switch {
	case h.Kind == "List" && h.APIVersion == "v1",
		h.Kind == "NetworkPolicyList" && h.APIVersion == APIVersion:
		var list struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Metadata   json.RawMessage   `json:"metadata"`
			Items      []json.RawMessage `json:"items"`
		}
		if err := yaml.UnmarshalStrict(doc, &list); err != nil {
			return nil, fmt.Errorf("%s: %w", h.Kind, err)
		}
		var out []networkingv1.NetworkPolicy
		for i, item := range list.Items {
			np, err := parsePolicy(item)
			if err != nil {
				return nil, fmt.Errorf("items[%d]: %w", i, err)
			}
			out = append(out, np)
		}
		return out, nil
	case h.Kind == Kind && h.APIVersion == APIVersion:
		np, err := parsePolicy(doc)
		if err != nil {
			return nil, err
		}
		return []networkingv1.NetworkPolicy{np}, nil
	default:
		return nil, fmt.Errorf("apiVersion %q kind %q: only %s %s (or a List of them) is accepted", h.APIVersion, h.Kind, APIVersion, Kind)
	}
}

func parsePolicy(doc []byte) (networkingv1.NetworkPolicy, error) {
	var np networkingv1.NetworkPolicy
	if err := yaml.UnmarshalStrict(doc, &np); err != nil {
		return np, fmt.Errorf("%s: %w", Kind, err)
	}
	if np.Kind != Kind || np.APIVersion != APIVersion {
		return np, fmt.Errorf("apiVersion %q kind %q: want %s %s", np.APIVersion, np.Kind, APIVersion, Kind)
	}
	if np.Namespace == "" {
		np.Namespace = DefaultNamespace
	}
	SetDefaults(&np)
	if err := Validate(&np); err != nil {
		return np, fmt.Errorf("NetworkPolicy %s/%s: %w", np.Namespace, np.Name, err)
	}
	return np, nil
}

// SetDefaults applies the API server's defaults in place: protocol TCP on
// every port without one, and policyTypes when none are given (Ingress, plus
// Egress when the policy has egress rules). It is idempotent.
func SetDefaults(np *networkingv1.NetworkPolicy) {
	tcp := corev1.ProtocolTCP
	for i := range np.Spec.Ingress {
		for j := range np.Spec.Ingress[i].Ports {
			if np.Spec.Ingress[i].Ports[j].Protocol == nil {
				np.Spec.Ingress[i].Ports[j].Protocol = &tcp
			}
		}
	}
	for i := range np.Spec.Egress {
		for j := range np.Spec.Egress[i].Ports {
			if np.Spec.Egress[i].Ports[j].Protocol == nil {
				np.Spec.Egress[i].Ports[j].Protocol = &tcp
			}
		}
	}
	if len(np.Spec.PolicyTypes) == 0 {
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(np.Spec.Egress) > 0 {
			np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		}
	}
}

// Validate checks a NetworkPolicy as Kubernetes' API server does
// (ValidateNetworkPolicy in k8s.io/kubernetes, same rules written against the
// v1 types) and refuses what weft cannot honour: named ports.
func Validate(np *networkingv1.NetworkPolicy) error {
	var errs field.ErrorList
	errs = append(errs, apivalidation.ValidateObjectMeta(&np.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))...)
	spec := field.NewPath("spec")
	selOpts := metav1validation.LabelSelectorValidationOptions{}
	errs = append(errs, metav1validation.ValidateLabelSelector(&np.Spec.PodSelector, selOpts, spec.Child("podSelector"))...)
	for i, rule := range np.Spec.Ingress {
		p := spec.Child("ingress").Index(i)
		errs = append(errs, validatePorts(rule.Ports, p.Child("ports"))...)
		for j := range rule.From {
			errs = append(errs, validatePeer(&rule.From[j], p.Child("from").Index(j))...)
		}
	}
	for i, rule := range np.Spec.Egress {
		p := spec.Child("egress").Index(i)
		errs = append(errs, validatePorts(rule.Ports, p.Child("ports"))...)
		for j := range rule.To {
			errs = append(errs, validatePeer(&rule.To[j], p.Child("to").Index(j))...)
		}
	}
	types := spec.Child("policyTypes")
	if len(np.Spec.PolicyTypes) > 2 {
		errs = append(errs, field.TooMany(types, len(np.Spec.PolicyTypes), 2))
	}
	seenTypes := map[networkingv1.PolicyType]bool{}
	for i, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress:
			if seenTypes[t] {
				errs = append(errs, field.Duplicate(types.Index(i), t))
			}
			seenTypes[t] = true
		default:
			errs = append(errs, field.NotSupported(types.Index(i), t, []string{string(networkingv1.PolicyTypeIngress), string(networkingv1.PolicyTypeEgress)}))
		}
	}
	return errs.ToAggregate()
}

func validatePorts(ports []networkingv1.NetworkPolicyPort, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, port := range ports {
		p := path.Index(i)
		if port.Protocol != nil {
			switch *port.Protocol {
			case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
			default:
				errs = append(errs, field.NotSupported(p.Child("protocol"), *port.Protocol, []string{string(corev1.ProtocolTCP), string(corev1.ProtocolUDP), string(corev1.ProtocolSCTP)}))
			}
		}
		if port.Port != nil {
			if port.Port.Type == intstr.Int {
				for _, msg := range validation.IsValidPortNum(int(port.Port.IntVal)) {
					errs = append(errs, field.Invalid(p.Child("port"), port.Port.IntVal, msg))
				}
			} else {
				for _, msg := range validation.IsValidPortName(port.Port.StrVal) {
					errs = append(errs, field.Invalid(p.Child("port"), port.Port.StrVal, msg))
				}
				// Valid for Kubernetes, but weft has no container port
				// names to resolve it against: refuse rather than ignore.
				errs = append(errs, field.Invalid(p.Child("port"), port.Port.StrVal, "named ports are not supported by weft (containers declare no port names); give the port number"))
			}
		}
		if port.EndPort != nil {
			switch {
			case port.Port == nil:
				errs = append(errs, field.Required(p.Child("port"), "must be specified when endPort is specified"))
			case port.Port.Type == intstr.String:
				errs = append(errs, field.Invalid(p.Child("endPort"), *port.EndPort, "may not be specified when `port` is non-numeric"))
			case *port.EndPort < port.Port.IntVal:
				errs = append(errs, field.Invalid(p.Child("endPort"), *port.EndPort, "must be greater than or equal to `port`"))
			}
			for _, msg := range validation.IsValidPortNum(int(*port.EndPort)) {
				errs = append(errs, field.Invalid(p.Child("endPort"), *port.EndPort, msg))
			}
		}
	}
	return errs
}

func validatePeer(peer *networkingv1.NetworkPolicyPeer, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	selOpts := metav1validation.LabelSelectorValidationOptions{}
	n := 0
	if peer.PodSelector != nil {
		n++
		errs = append(errs, metav1validation.ValidateLabelSelector(peer.PodSelector, selOpts, path.Child("podSelector"))...)
	}
	if peer.NamespaceSelector != nil {
		n++
		errs = append(errs, metav1validation.ValidateLabelSelector(peer.NamespaceSelector, selOpts, path.Child("namespaceSelector"))...)
	}
	if peer.IPBlock != nil {
		n++
		errs = append(errs, validateIPBlock(peer.IPBlock, path.Child("ipBlock"))...)
	}
	switch {
	case n == 0:
		errs = append(errs, field.Required(path, "must specify a peer"))
	case n > 1 && peer.IPBlock != nil:
		errs = append(errs, field.Forbidden(path, "may not specify both ipBlock and another peer"))
	}
	return errs
}

func validateIPBlock(b *networkingv1.IPBlock, path *field.Path) field.ErrorList {
	if b.CIDR == "" {
		return field.ErrorList{field.Required(path.Child("cidr"), "")}
	}
	errs := validation.IsValidCIDRForLegacyField(path.Child("cidr"), b.CIDR, true, nil)
	if len(errs) > 0 {
		return errs
	}
	cidr, err := parsePrefix(b.CIDR)
	if err != nil {
		return field.ErrorList{field.Invalid(path.Child("cidr"), b.CIDR, err.Error())}
	}
	for i, s := range b.Except {
		p := path.Child("except").Index(i)
		if e := validation.IsValidCIDRForLegacyField(p, s, true, nil); len(e) > 0 {
			errs = append(errs, e...)
			continue
		}
		except, err := parsePrefix(s)
		if err != nil {
			errs = append(errs, field.Invalid(p, s, err.Error()))
			continue
		}
		if except.Addr().Is4() != cidr.Addr().Is4() || !cidr.Contains(except.Addr()) || except.Bits() <= cidr.Bits() {
			errs = append(errs, field.Invalid(p, s, "must be a strict subset of `cidr`"))
		}
	}
	return errs
}

// parsePrefix reads a CIDR and returns its network (host bits cleared),
// with IPv4-mapped IPv6 forms read as IPv4.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return p, err
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}
