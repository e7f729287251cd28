package cni

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/weftnet/weft/cni/daemonsock"
	"github.com/weftnet/weft/k8sname"
)

// DefaultNamespace is the default of the defaultNamespace option.
const DefaultNamespace = "default"

// Keys of CNI_ARGS that name the container's workload (as Kubernetes
// runtimes and podman set them).
const (
	argPodNamespace = "K8S_POD_NAMESPACE"
	argPodName      = "K8S_POD_NAME"
	// argLabels is weft's own key: "WEFT_LABELS=k:v,k2:v2" adds labels to
	// (or overrides) those of args.cni.labels. podman passes its own
	// CNI_ARGS environment variable on to plugins, so this labels a single
	// podman container, where args.cni.labels labels a whole network.
	argLabels = "WEFT_LABELS"
)

// daemonTimeout bounds telling weftd about an ADD or DEL (weftd answers an
// ADD once the attachment is stored in etcd).
const daemonTimeout = 15 * time.Second

// validateNamespace applies the one namespace rule (k8sname), so that a
// bad one is refused at once with a config error (weftd checks again).
func validateNamespace(name string) error { return k8sname.ValidateNamespace(name) }

// rawLabel is one entry of args.cni.labels.
type rawLabel struct {
	Key   *string `json:"key"`
	Value *string `json:"value"`
}

// parseLabels turns the conventions' [{"key":K,"value":V}] into a map;
// keys must be present and unique. weftd checks the syntax of keys and
// values.
func parseLabels(raw []rawLabel) (map[string]string, error) {
	labels := make(map[string]string, len(raw))
	for i, l := range raw {
		if l.Key == nil || *l.Key == "" {
			return nil, fmt.Errorf("[%d]: missing \"key\"", i)
		}
		if l.Value == nil {
			return nil, fmt.Errorf("[%d] (%s): missing \"value\"", i, *l.Key)
		}
		if _, dup := labels[*l.Key]; dup {
			return nil, fmt.Errorf("[%d]: key %q given twice", i, *l.Key)
		}
		labels[*l.Key] = *l.Value
	}
	return labels, nil
}

// parseLabelList reads "k:v,k2:v2" on top of base (which is not changed).
func parseLabelList(s string, base map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(base))
	for k, v := range base {
		out[k] = v
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, ":")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key:value", kv)
		}
		if seen[k] {
			return nil, fmt.Errorf("key %q given twice", k)
		}
		seen[k] = true
		out[k] = v
	}
	return out, nil
}

// identity is what policy knows the container being attached by.
type identity struct {
	namespace string
	pod       string
	labels    map[string]string
}

// identityOf reads K8S_POD_NAMESPACE, K8S_POD_NAME and WEFT_LABELS from
// CNI_ARGS ("K=V;K=V"); other keys are ignored. podman sends its container
// name as K8S_POD_NAME (and no K8S_POD_NAMESPACE); a name that is not a
// Kubernetes object name there ("hungry_ride", "My.App") is no pod name and
// is left out, instead of failing the ADD. A pod name weftd's store would
// refuse (k8sname.ValidatePodName, the one rule) is left out too.
func identityOf(conf *NetConf, cniArgs string) (identity, error) {
	w := identity{namespace: conf.DefaultNamespace, labels: conf.Labels}
	kubernetes := false
	for _, kv := range strings.Split(cniArgs, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case argPodNamespace:
			if v != "" {
				w.namespace = v
				kubernetes = true
			}
		case argPodName:
			w.pod = v
		case argLabels:
			labels, err := parseLabelList(v, conf.Labels)
			if err != nil {
				return w, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_ARGS %s: %v", argLabels, err), "want WEFT_LABELS=key:value,key2:value2 (':' because CNI_ARGS values cannot hold '=')")
			}
			w.labels = labels
		}
	}
	switch {
	case w.pod == "":
	case !kubernetes && !k8sname.IsKubernetesName(w.pod):
		w.pod = "" // a container name podman generated, no pod name
	case k8sname.ValidatePodName(w.pod) != nil:
		w.pod = "" // what weftd's store would refuse: left out, not a failed ADD
	}
	if err := validateNamespace(w.namespace); err != nil {
		return w, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_ARGS %s: %v", argPodNamespace, err), "")
	}
	return w, nil
}

// registerAdd tells weftd about a new container, one request per address
// (IPv4 first): policy selects each of its addresses. An unreachable or
// refusing weftd fails the ADD: a container weft cannot identify cannot be
// policed, and a clear error is safer than an unpoliced container. It
// returns the addresses weftd accepted (on failure, the caller withdraws
// them: weftd withdraws the one it refused itself).
func registerAdd(conf *NetConf, args *skel.CmdArgs, w identity, addrs []netip.Addr) ([]netip.Addr, error) {
	if conf.DaemonSocket == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), daemonTimeout)
	defer cancel()
	var done []netip.Addr
	for _, addr := range addrs {
		err := daemonsock.Send(ctx, conf.DaemonSocket, daemonsock.Request{
			Op: daemonsock.OpAdd, IP: addr, Namespace: w.namespace, Pod: w.pod, Labels: w.labels,
			ContainerID: args.ContainerID, IfName: args.IfName, Network: conf.Name, DataDir: conf.DataDir,
		})
		if err == nil {
			done = append(done, addr)
			continue
		}
		var refused *daemonsock.RefusedError
		if errors.As(err, &refused) {
			return done, types.NewError(types.ErrInternal, fmt.Sprintf("weftd refused the container, so it is not attached (address %s): %s", addr, refused.Msg), "")
		}
		return done, types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("cannot register the container with weftd, so it is not attached (it could not be policed): %v", err),
			"is weftd running? set \"daemonSocket\" to weftd's --cni-socket")
	}
	return done, nil
}

// registerDel tells weftd a container interface is gone. DEL must work
// without weftd, so failures are only logged; weftd drops endpoints whose
// address the store no longer holds when it restarts.
func (p *Plugin) registerDel(conf *NetConf, args *skel.CmdArgs, addrs []netip.Addr) {
	if len(addrs) == 0 {
		addrs = []netip.Addr{{}}
	}
	p.registerDelAddrs(conf, args, addrs)
}

// registerDelAddrs withdraws each of addrs (an invalid one: every address
// of the attachment) from weftd, logging failures.
func (p *Plugin) registerDelAddrs(conf *NetConf, args *skel.CmdArgs, addrs []netip.Addr) {
	if conf.DaemonSocket == "" || len(addrs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), daemonTimeout)
	defer cancel()
	req := daemonsock.Request{Op: daemonsock.OpDel, ContainerID: args.ContainerID, IfName: args.IfName, Network: conf.Name, DataDir: conf.DataDir}
	for _, a := range addrs {
		req.IP = a
		if err := daemonsock.Send(ctx, conf.DaemonSocket, req); err != nil {
			p.log().Warn("could not tell weftd about DEL", "container", args.ContainerID, "ip", a, "err", err)
		}
	}
}
