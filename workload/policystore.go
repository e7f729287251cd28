package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sort"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// MaxPoliciesPerApply is how many policies one ApplyPolicies call may
// write: they go in one etcd transaction, and etcd allows 128 operations
// in one by default (--max-txn-ops).
const MaxPoliciesPerApply = 128

func (s *Store) attachmentsPrefix() string { return s.prefix + "/endpoints/" }
func (s *Store) namespacesPrefix() string  { return s.prefix + "/namespaces/" }
func (s *Store) policiesPrefix() string    { return s.prefix + "/policies/" }

func (s *Store) attachmentKey(ip netip.Addr) string { return s.attachmentsPrefix() + ip.String() }
func (s *Store) namespaceKey(name string) string    { return s.namespacesPrefix() + name }
func (s *Store) policyKey(ns, name string) string   { return s.policiesPrefix() + ns + "/" + name }

// namespaceJSON is the value of a namespace key.
type namespaceJSON struct {
	Labels map[string]string `json:"labels"`
}

// withNameLabel returns labels plus NamespaceNameLabel=name.
func withNameLabel(name string, labels map[string]string) map[string]string {
	out := make(map[string]string, len(labels)+1)
	maps.Copy(out, labels)
	out[NamespaceNameLabel] = name
	return out
}

// LabelNamespace changes a namespace's labels: set adds or replaces,
// remove deletes keys. NamespaceNameLabel cannot be changed. It returns
// the namespace as stored.
func (s *Store) LabelNamespace(ctx context.Context, name string, set map[string]string, remove []string) (Namespace, error) {
	if err := ValidateNamespaceName(name); err != nil {
		return Namespace{}, err
	}
	if err := ValidateLabels(set); err != nil {
		return Namespace{}, fmt.Errorf("namespace %s: %w", name, err)
	}
	if _, ok := set[NamespaceNameLabel]; ok {
		return Namespace{}, fmt.Errorf("namespace %s: label %s is set by weft to the namespace's name", name, NamespaceNameLabel)
	}
	for _, k := range remove {
		if k == NamespaceNameLabel {
			return Namespace{}, fmt.Errorf("namespace %s: label %s cannot be removed", name, NamespaceNameLabel)
		}
	}
	key := s.namespaceKey(name)
	for range maxWriteAttempts {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return Namespace{}, fmt.Errorf("read namespace %s: %w", name, err)
		}
		s.touch()
		labels := map[string]string{}
		var modRev int64
		if len(resp.Kvs) > 0 {
			ns, err := decodeNamespace(name, resp.Kvs[0].Value)
			if err != nil {
				return Namespace{}, fmt.Errorf("%s: %w", key, err)
			}
			delete(ns.Labels, NamespaceNameLabel)
			labels, modRev = ns.Labels, resp.Kvs[0].ModRevision
		}
		maps.Copy(labels, set)
		for _, k := range remove {
			delete(labels, k)
		}
		data, err := json.Marshal(namespaceJSON{Labels: labels})
		if err != nil {
			return Namespace{}, err
		}
		txn, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).
			Then(clientv3.OpPut(key, string(data))).
			Commit()
		if err != nil {
			return Namespace{}, fmt.Errorf("write namespace %s: %w", name, err)
		}
		if txn.Succeeded {
			return Namespace{Name: name, Labels: withNameLabel(name, labels)}, nil
		}
	}
	return Namespace{}, fmt.Errorf("write namespace %s: gave up after %d conflicting writes", name, maxWriteAttempts)
}

// DeleteNamespace removes a namespace's labels; found tells whether it
// had any stored.
func (s *Store) DeleteNamespace(ctx context.Context, name string) (found bool, err error) {
	if err := ValidateNamespaceName(name); err != nil {
		return false, err
	}
	resp, err := s.cli.Delete(ctx, s.namespaceKey(name))
	if err != nil {
		return false, fmt.Errorf("delete namespace %s: %w", name, err)
	}
	s.touch()
	return resp.Deleted > 0, nil
}

// ListNamespaces returns every stored namespace, sorted by name.
// Malformed values are logged and skipped.
func (s *Store) ListNamespaces(ctx context.Context) ([]Namespace, error) {
	resp, err := s.cli.Get(ctx, s.namespacesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	s.touch()
	var out []Namespace
	for _, kv := range resp.Kvs {
		if ns, ok := s.namespaceFromKV(kv); ok {
			out = append(out, ns)
		}
	}
	return out, nil
}

func decodeNamespace(name string, value []byte) (Namespace, error) {
	var v namespaceJSON
	if err := json.Unmarshal(value, &v); err != nil {
		return Namespace{}, fmt.Errorf("malformed namespace value: %w", err)
	}
	if err := ValidateLabels(v.Labels); err != nil {
		return Namespace{}, fmt.Errorf("malformed namespace value: %w", err)
	}
	return Namespace{Name: name, Labels: withNameLabel(name, v.Labels)}, nil
}

func (s *Store) namespaceFromKV(kv *mvccpb.KeyValue) (Namespace, bool) {
	name, _ := strings.CutPrefix(string(kv.Key), s.namespacesPrefix())
	if err := ValidateNamespaceName(name); err != nil {
		s.bad.report(KindNamespace, kv.Key, "ignoring malformed namespace key", err.Error())
		return Namespace{}, false
	}
	ns, err := decodeNamespace(name, kv.Value)
	if err != nil {
		s.bad.report(KindNamespace, kv.Key, "ignoring malformed namespace", err.Error())
		return Namespace{}, false
	}
	return ns, true
}

// PolicyOutcome says what ApplyPolicies did with one policy (kubectl
// apply's words).
type PolicyOutcome string

const (
	PolicyCreated    PolicyOutcome = "created"    // there was none
	PolicyConfigured PolicyOutcome = "configured" // replaced a different value
	PolicyUnchanged  PolicyOutcome = "unchanged"  // the stored value was byte-identical: not written
)

// ApplyPolicies stores every policy (creating or replacing) in one etcd
// transaction: all are written or none. Each is validated first. A policy
// whose stored value is byte-identical is not written again (every node
// would rebuild its rules for a write that changes nothing). The
// transaction holds only if no policy changed since it was read (each key's
// ModRevision compared), so a concurrent write is never lost or overwritten
// unseen: on a conflict ApplyPolicies reads again and decides again. The
// outcomes are in the order of policies.
func (s *Store) ApplyPolicies(ctx context.Context, policies []Policy) ([]PolicyOutcome, error) {
	return s.applyPolicies(ctx, policies, nil)
}

// applyPolicies is ApplyPolicies with a test hook run after each read.
func (s *Store) applyPolicies(ctx context.Context, policies []Policy, afterRead func()) ([]PolicyOutcome, error) {
	if len(policies) == 0 {
		return nil, errors.New("apply policies: none given")
	}
	if len(policies) > MaxPoliciesPerApply {
		return nil, fmt.Errorf("apply policies: %d policies in one apply, at most %d (etcd's limit on one transaction); split the file", len(policies), MaxPoliciesPerApply)
	}
	seen := map[string]bool{}
	keys := make([]string, 0, len(policies))
	gets := make([]clientv3.Op, 0, len(policies))
	for _, p := range policies {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("apply policies: %w", err)
		}
		key := s.policyKey(p.Namespace, p.Name)
		if seen[key] {
			return nil, fmt.Errorf("apply policies: policy %s/%s given twice", p.Namespace, p.Name)
		}
		seen[key] = true
		keys = append(keys, key)
		gets = append(gets, clientv3.OpGet(key))
	}
	for range maxWriteAttempts {
		// One read of every key, at one revision.
		read, err := s.cli.Txn(ctx).Then(gets...).Commit()
		if err != nil {
			return nil, fmt.Errorf("apply policies (nothing written): read stored policies: %w", err)
		}
		s.touch()
		if afterRead != nil {
			afterRead()
		}
		outcomes := make([]PolicyOutcome, len(policies))
		cmps := make([]clientv3.Cmp, 0, len(policies))
		var puts []clientv3.Op
		for i, r := range read.Responses {
			kvs := r.GetResponseRange().GetKvs()
			var modRev int64
			switch {
			case len(kvs) == 0:
				outcomes[i] = PolicyCreated
			case bytes.Equal(kvs[0].Value, policies[i].JSON):
				outcomes[i], modRev = PolicyUnchanged, kvs[0].ModRevision
			default:
				outcomes[i], modRev = PolicyConfigured, kvs[0].ModRevision
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(keys[i]), "=", modRev))
			if outcomes[i] != PolicyUnchanged {
				puts = append(puts, clientv3.OpPut(keys[i], string(policies[i].JSON)))
			}
		}
		if len(puts) == 0 {
			return outcomes, nil // all as stored, as of one revision
		}
		txn, err := s.cli.Txn(ctx).If(cmps...).Then(puts...).Commit()
		if err != nil {
			return nil, fmt.Errorf("apply policies (nothing written): %w", err)
		}
		s.touch()
		if txn.Succeeded {
			return outcomes, nil
		}
	}
	return nil, fmt.Errorf("apply policies (nothing written): gave up after %d conflicting writes", maxWriteAttempts)
}

// GetPolicy reads one policy; found is false when there is none.
func (s *Store) GetPolicy(ctx context.Context, namespace, name string) (p Policy, found bool, err error) {
	if err := (Policy{Namespace: namespace, Name: name, JSON: []byte("{}")}).Validate(); err != nil {
		return Policy{}, false, err
	}
	resp, err := s.cli.Get(ctx, s.policyKey(namespace, name))
	if err != nil {
		return Policy{}, false, fmt.Errorf("read policy %s/%s: %w", namespace, name, err)
	}
	s.touch()
	if len(resp.Kvs) == 0 {
		return Policy{}, false, nil
	}
	kv := resp.Kvs[0]
	return Policy{Namespace: namespace, Name: name, JSON: kv.Value, Revision: kv.ModRevision}, true, nil
}

// ListPolicies returns the policies of namespace ("" for all), sorted,
// including values that are no valid policy (see policyFromKV).
func (s *Store) ListPolicies(ctx context.Context, namespace string) ([]Policy, error) {
	prefix := s.policiesPrefix()
	if namespace != "" {
		if err := ValidateNamespaceName(namespace); err != nil {
			return nil, err
		}
		prefix += namespace + "/"
	}
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	s.touch()
	var out []Policy
	for _, kv := range resp.Kvs {
		if p, ok := s.policyFromKV(kv); ok {
			out = append(out, p)
		}
	}
	sortPolicies(out)
	return out, nil
}

// DeletePolicy removes one policy; found tells whether it existed.
func (s *Store) DeletePolicy(ctx context.Context, namespace, name string) (found bool, err error) {
	if err := (Policy{Namespace: namespace, Name: name, JSON: []byte("{}")}).Validate(); err != nil {
		return false, err
	}
	resp, err := s.cli.Delete(ctx, s.policyKey(namespace, name))
	if err != nil {
		return false, fmt.Errorf("delete policy %s/%s: %w", namespace, name, err)
	}
	s.touch()
	return resp.Deleted > 0, nil
}

// policyFromKV reads one stored policy. A key whose namespace part is no
// namespace name is skipped (no container can be in it). Any other is
// returned even when its name or value is malformed (another writer's):
// the policy engine and weftctl judge the value, and a namespace whose
// policy cannot be read fails closed rather than losing it unseen.
func (s *Store) policyFromKV(kv *mvccpb.KeyValue) (Policy, bool) {
	rest, _ := strings.CutPrefix(string(kv.Key), s.policiesPrefix())
	ns, name, slash := strings.Cut(rest, "/")
	p := Policy{Namespace: ns, Name: name, JSON: kv.Value, Revision: kv.ModRevision}
	if !slash {
		s.bad.report(KindPolicy, kv.Key, "ignoring a policy key outside any namespace", "no namespace/name")
		return Policy{}, false
	}
	if err := ValidateNamespaceName(ns); err != nil {
		s.bad.report(KindPolicy, kv.Key, "ignoring a policy key outside any namespace", err.Error())
		return Policy{}, false
	}
	if err := p.Validate(); err != nil {
		s.bad.report(KindPolicy, kv.Key, "malformed policy: its namespace fails closed", err.Error())
	}
	return p, true
}

func sortPolicies(ps []Policy) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Namespace != ps[j].Namespace {
			return ps[i].Namespace < ps[j].Namespace
		}
		return ps[i].Name < ps[j].Name
	})
}

// ListAttachments returns every published attachment, sorted by IP.
func (s *Store) ListAttachments(ctx context.Context) ([]Attachment, error) {
	resp, err := s.cli.Get(ctx, s.attachmentsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	s.touch()
	var out []Attachment
	for _, kv := range resp.Kvs {
		if ep, ok := s.attachmentFromKV(kv); ok {
			out = append(out, ep)
		}
	}
	sortAttachments(out)
	return out, nil
}

func decodeAttachment(value []byte) (Attachment, error) {
	var ep Attachment
	if err := json.Unmarshal(value, &ep); err != nil {
		return Attachment{}, fmt.Errorf("malformed endpoint value: %w", err)
	}
	if err := ep.Validate(); err != nil {
		return Attachment{}, fmt.Errorf("malformed endpoint value: %w", err)
	}
	return ep, nil
}

func (s *Store) attachmentFromKV(kv *mvccpb.KeyValue) (Attachment, bool) {
	name, _ := strings.CutPrefix(string(kv.Key), s.attachmentsPrefix())
	ip, err := netip.ParseAddr(name)
	if err != nil {
		s.bad.report(KindAttachment, kv.Key, "ignoring malformed endpoint key", "not an IP address")
		return Attachment{}, false
	}
	ep, err := decodeAttachment(kv.Value)
	if err == nil && ep.IP != ip {
		err = fmt.Errorf("value names IP %s", ep.IP)
	}
	if err != nil {
		s.bad.report(KindAttachment, kv.Key, "ignoring malformed endpoint", err.Error())
		return Attachment{}, false
	}
	return ep, true
}

func sortAttachments(eps []Attachment) {
	sort.Slice(eps, func(i, j int) bool { return eps[i].IP.Less(eps[j].IP) })
}
