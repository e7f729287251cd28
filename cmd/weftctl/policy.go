package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/weftnet/weft/policy"
	"github.com/weftnet/weft/workload"
)

// policyCommand runs `policy apply|list|get|delete`.
func policyCommand(ctx context.Context, o *options, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("policy: want apply -f FILE, list, get NAME or delete NAME")
	}
	switch args[0] {
	case "apply":
		if len(args) != 1 || o.file == "" {
			return errors.New("policy apply takes -f FILE (- for standard input) and no arguments")
		}
		if o.namespace != "" {
			return errors.New("policy apply: -n is not used; a manifest names its namespace in metadata.namespace (none means \"default\")")
		}
		// Parse and validate everything before touching etcd.
		policies, err := readPolicies(o.file, stdin)
		if err != nil {
			return err
		}
		return withStore(ctx, o, func(m *workload.Store) error {
			outcomes, err := m.ApplyPolicies(ctx, policies)
			if err != nil {
				return err
			}
			for i, p := range policies {
				fmt.Fprintf(stdout, "networkpolicy %s/%s %s\n", p.Namespace, p.Name, outcomes[i])
			}
			return nil
		})
	case "list":
		if len(args) != 1 {
			return fmt.Errorf("policy list takes no arguments, got %q", args[1:])
		}
		return withStore(ctx, o, func(m *workload.Store) error { return policyList(ctx, m, o, stdout) })
	case "get", "delete":
		if len(args) != 2 {
			return fmt.Errorf("policy %s takes one argument: NAME (with -n NAMESPACE) or NAMESPACE/NAME", args[0])
		}
		ns, name := splitPolicyName(args[1], o.namespace)
		if args[0] == "get" {
			return withStore(ctx, o, func(m *workload.Store) error { return policyGet(ctx, m, ns, name, stdout) })
		}
		return withStore(ctx, o, func(m *workload.Store) error {
			found, err := m.DeletePolicy(ctx, ns, name)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("networkpolicy %s/%s not found", ns, name)
			}
			_, err = fmt.Fprintf(stdout, "networkpolicy %s/%s deleted\n", ns, name)
			return err
		})
	}
	return fmt.Errorf("policy %s: unknown (want apply, list, get or delete)", args[0])
}

// maxManifest bounds what policy apply reads (a file, a device such as
// /dev/zero, standard input): 3 MiB, the request body limit of
// Kubernetes' API server; a policy of 2,000 peers and 1,000 ports is
// about 112 KB.
const maxManifest = 3 << 20

// readPolicies parses the file with the policy package (strict: unknown
// fields, named ports and invalid policies are refused) and turns each
// policy into what subnet stores.
func readPolicies(file string, stdin io.Reader) ([]workload.Policy, error) {
	in := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("policy apply: %w", err)
		}
		defer f.Close()
		in = f
	}
	data, err := io.ReadAll(io.LimitReader(in, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("policy apply: read %s: %w", file, err)
	}
	if len(data) > maxManifest {
		return nil, fmt.Errorf("policy apply %s (nothing applied): input larger than %d bytes (%d MiB), the most weftctl reads; split the manifests", file, maxManifest, maxManifest>>20)
	}
	nps, err := policy.ParseManifests(data)
	if err != nil {
		return nil, fmt.Errorf("policy apply %s (nothing applied): %w", file, err)
	}
	out := make([]workload.Policy, 0, len(nps))
	for _, np := range nps {
		np.APIVersion, np.Kind = policy.APIVersion, policy.Kind
		if np.Namespace == "" {
			np.Namespace = workload.DefaultNamespace
		}
		js, err := json.Marshal(np)
		if err != nil {
			return nil, fmt.Errorf("policy apply: encode %s/%s: %w", np.Namespace, np.Name, err)
		}
		out = append(out, workload.Policy{Namespace: np.Namespace, Name: np.Name, JSON: js})
	}
	return out, nil
}

// splitPolicyName accepts NAMESPACE/NAME or NAME (in namespace ns, default
// "default").
func splitPolicyName(arg, ns string) (string, string) {
	if n, name, ok := strings.Cut(arg, "/"); ok {
		return n, name
	}
	if ns == "" {
		ns = workload.DefaultNamespace
	}
	return ns, arg
}

func policyList(ctx context.Context, m *workload.Store, o *options, stdout io.Writer) error {
	ps, err := m.ListPolicies(ctx, o.namespace)
	if err != nil {
		return err
	}
	// A stored value weftd cannot use (another writer's) is shown as
	// rejected with the reason: weftd isolates its namespace until it is
	// fixed or deleted.
	type rejected struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		Reason    string `json:"reason"`
	}
	if o.output == "json" {
		items := make([]json.RawMessage, 0, len(ps))
		bad := []rejected{}
		for _, p := range ps {
			if _, err := policy.CheckStored(p.Namespace, p.Name, p.JSON); err != nil {
				bad = append(bad, rejected{p.Namespace, p.Name, err.Error()})
				continue
			}
			items = append(items, p.JSON)
		}
		return writeJSON(stdout, map[string]any{"apiVersion": policy.APIVersion, "kind": "NetworkPolicyList", "items": items, "rejected": bad})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tPOLICY TYPES")
	for _, p := range ps {
		np, err := policy.CheckStored(p.Namespace, p.Name, p.JSON)
		if err != nil {
			reason := strings.Join(strings.Fields(err.Error()), " ")
			if len(reason) > 200 {
				reason = reason[:200] + "..."
			}
			fmt.Fprintf(tw, "%s\t%s\tREJECTED (namespace %s isolated until fixed or deleted): %s\n", p.Namespace, p.Name, p.Namespace, reason)
			continue
		}
		policy.SetDefaults(&np)
		var names []string
		for _, pt := range np.Spec.PolicyTypes {
			names = append(names, string(pt))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Namespace, p.Name, strings.Join(names, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%d policies\n", len(ps))
	return err
}

func policyGet(ctx context.Context, m *workload.Store, ns, name string, stdout io.Writer) error {
	p, found, err := m.GetPolicy(ctx, ns, name)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("networkpolicy %s/%s not found", ns, name)
	}
	return writeJSON(stdout, json.RawMessage(p.JSON))
}

// namespaceCommand runs `namespace label|list|delete`.
func namespaceCommand(ctx context.Context, o *options, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("namespace: want label NAME KEY=VALUE... | list | delete NAME")
	}
	switch args[0] {
	case "label":
		if len(args) < 3 {
			return errors.New("namespace label NAME KEY=VALUE... (KEY- removes a label)")
		}
		name := args[1]
		set, remove, err := parseLabelArgs(args[2:])
		if err != nil {
			return err
		}
		if err := workload.ValidateNamespaceName(name); err != nil {
			return err
		}
		if err := workload.ValidateLabels(set); err != nil {
			return err
		}
		return withStore(ctx, o, func(m *workload.Store) error {
			ns, err := m.LabelNamespace(ctx, name, set, remove)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "namespace %s labelled: %s\n", ns.Name, formatLabels(ns.Labels))
			return err
		})
	case "list":
		if len(args) != 1 {
			return fmt.Errorf("namespace list takes no arguments, got %q", args[1:])
		}
		// Every namespace policy can see: labelled ones and those only
		// named by a container or a policy.
		return withStore(ctx, o, func(m *workload.Store) error {
			v, err := m.GetView(ctx)
			if err != nil {
				return err
			}
			nss := v.Namespaces
			if o.output == "json" {
				return writeJSON(stdout, nss)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tLABELS")
			for _, ns := range nss {
				fmt.Fprintf(tw, "%s\t%s\n", ns.Name, formatLabels(ns.Labels))
			}
			return tw.Flush()
		})
	case "delete":
		if len(args) != 2 {
			return errors.New("namespace delete takes one argument: NAME")
		}
		return withStore(ctx, o, func(m *workload.Store) error {
			found, err := m.DeleteNamespace(ctx, args[1])
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("namespace %s has no labels stored", args[1])
			}
			_, err = fmt.Fprintf(stdout, "namespace %s: labels deleted\n", args[1])
			return err
		})
	}
	return fmt.Errorf("namespace %s: unknown (want label, list or delete)", args[0])
}

// parseLabelArgs reads KEY=VALUE (set) and KEY- (remove), as kubectl label.
func parseLabelArgs(args []string) (map[string]string, []string, error) {
	set := map[string]string{}
	var remove []string
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			if _, dup := set[k]; dup {
				return nil, nil, fmt.Errorf("label %s given twice", k)
			}
			set[k] = v
			continue
		}
		if k, ok := strings.CutSuffix(a, "-"); ok && k != "" {
			remove = append(remove, k)
			continue
		}
		return nil, nil, fmt.Errorf("label %q: want KEY=VALUE or KEY- (to remove)", a)
	}
	return set, remove, nil
}

func formatLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return "<none>"
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

// endpointsCommand runs `endpoints`: every published container.
func endpointsCommand(ctx context.Context, o *options, stdout io.Writer) error {
	return withStore(ctx, o, func(m *workload.Store) error {
		eps, err := m.ListAttachments(ctx)
		if err != nil {
			return err
		}
		if o.namespace != "" {
			kept := eps[:0]
			for _, e := range eps {
				if e.Namespace == o.namespace {
					kept = append(kept, e)
				}
			}
			eps = kept
		}
		if o.output == "json" {
			if eps == nil {
				eps = []workload.Attachment{}
			}
			return writeJSON(stdout, eps)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "IP\tNAMESPACE\tPOD\tLABELS\tNODE")
		for _, e := range eps {
			pod := e.Pod
			if pod == "" {
				pod = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.IP, e.Namespace, pod, formatLabels(e.Labels), e.Node)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%d endpoints\n", len(eps))
		return err
	})
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
