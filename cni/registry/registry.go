// Package registry is the CNI plugin's socket on weftd's side: it
// publishes the node's containers in etcd (workload.Publisher),
// keeps them in a local file so that a restarted weftd publishes them
// again (dropping those deleted meanwhile), refuses an address outside the
// node's subnet, and answers an ADD once the node's policy rules include
// the container (fails closed otherwise).
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftnet/weft/cni"
	"github.com/weftnet/weft/cni/daemonsock"
	"github.com/weftnet/weft/subnet/subnetfile"
	"github.com/weftnet/weft/workload"
)

// Options say what a Registry serves.
type Options struct {
	Node   string       // this node's name in the attachment records (its PublicIP)
	Subnet netip.Prefix // this node's subnet: containers outside it are refused
	// IPv6Subnet is this node's IPv6 subnet (invalid when the network has
	// no IPv6): IPv6 containers outside it are refused. Subnet is invalid
	// on an IPv6-only network.
	IPv6Subnet netip.Prefix
	File       string          // the endpoints file (--endpoints-file)
	Socket     string          // the CNI socket (--cni-socket)
	TTL        time.Duration   // the endpoints' etcd lease (--endpoint-ttl)
	Store      *workload.Store // where the containers are published
	// Enforced, if set, returns nil once policy rules include a new
	// container, an error if they are not in force in time.
	Enforced func(context.Context, netip.Addr) error
	// Policy, if set, is told the node's containers (SetLocal, a function
	// that never waits) and each change of them (LocalChanged).
	Policy interface {
		SetLocal(func() []workload.Attachment)
		LocalChanged()
	}
	// Retry runs the first publication until it succeeds or ctx ends.
	Retry func(ctx context.Context, what string, fn func(context.Context) error) error
	Log   *slog.Logger
}

// ErrConfig is wrapped by Start's errors that only a change of
// configuration can fix (a damaged endpoints file, a socket that cannot
// be made).
var ErrConfig = errors.New("configuration")

// configError wraps err as an ErrConfig with err's message.
type configError struct{ err error }

func (e configError) Error() string          { return e.err.Error() }
func (e configError) Unwrap() []error        { return []error{e.err, ErrConfig} }
func asConfig(format string, a ...any) error { return configError{fmt.Errorf(format, a...)} }

// Registry is the node's registered containers.
type Registry struct {
	pub  *workload.Publisher
	file string
	log  *slog.Logger
	// subnet and subnet6 are this node's (each invalid when the network
	// lacks the family): an attachment outside them would take over another
	// node's container's key in etcd (and, merged into this node's views,
	// override its record here).
	subnet, subnet6 netip.Prefix

	mu    sync.Mutex // serialises requests and file writes
	local map[netip.Addr]localAttachment
	// current is a copy of local (as workload.Endpoints, sorted) for the
	// policy engine, which must not wait for mu: a request holds it while
	// etcd does not answer.
	current atomic.Pointer[[]workload.Attachment]
	// enforced, if set, returns nil once policy rules include a new
	// container, an error if they are not in force in time.
	enforced func(context.Context, netip.Addr) error
	// changed, if set, is called after every change of local.
	changed func()
}

// localAttachment is one record of the endpoints file.
type localAttachment struct {
	workload.Attachment
	Network string `json:"network,omitempty"`
	DataDir string `json:"dataDir,omitempty"`
}

// endpointsFile is the file's JSON.
type endpointsFile struct {
	Endpoints []localAttachment `json:"endpoints"`
}

// Start publishes the containers this node had before a restart, then
// serves the CNI socket (goroutines in wg, until ctx ends). It returns once
// the socket listens.
func Start(ctx context.Context, wg *sync.WaitGroup, o Options) (*Registry, error) {
	r := &Registry{file: o.File, log: o.Log, enforced: o.Enforced, subnet: o.Subnet.Masked(), subnet6: o.IPv6Subnet.Masked()}
	local, err := Load(r.file)
	if err != nil {
		return nil, asConfig("%w (fix or remove the file; it lists this node's containers)", err)
	}
	r.local = r.stillAttached(local)
	r.pub = o.Store.NewPublisher(o.Node, o.TTL)
	r.snapshot()
	if o.Policy != nil {
		o.Policy.SetLocal(r.Attachments) // this node's rules always include its own containers
		r.changed = o.Policy.LocalChanged
	}
	eps := make([]workload.Attachment, 0, len(r.local))
	for _, le := range r.local {
		eps = append(eps, le.Attachment)
	}
	if err := o.Retry(ctx, "publish this node's endpoints", func(ctx context.Context) error {
		return r.pub.Start(ctx, eps)
	}); err != nil {
		return nil, err
	}
	if err := r.save(); err != nil {
		return nil, err
	}
	ln, err := daemonsock.Listen(o.Socket)
	if err != nil {
		return nil, asConfig("--cni-socket: %w", err)
	}
	r.log.Info("serving the CNI socket", "socket", o.Socket, "endpoints", len(eps), "ttl", o.TTL)
	wg.Go(func() { r.pub.Run(ctx) })
	wg.Go(func() {
		if err := daemonsock.Serve(ctx, ln, 0, r.handle); err != nil {
			r.log.Error("CNI socket failed", "err", err)
		}
	})
	return r, nil
}

// stillAttached drops records whose address the plugin's store no longer
// gives to the same container (a DEL that happened while weftd was down).
func (r *Registry) stillAttached(local map[netip.Addr]localAttachment) map[netip.Addr]localAttachment {
	out := make(map[netip.Addr]localAttachment, len(local))
	for ip, le := range local {
		if err := r.checkSubnet(ip); err != nil {
			r.log.Warn("dropping a container outside this node's subnets", "ip", ip, "err", err, "container", le.ContainerID)
			continue
		}
		if le.DataDir != "" {
			owner, held, err := cni.HeldBy(le.DataDir, ip)
			if err != nil {
				r.log.Warn("cannot check a container's address; keeping it", "ip", ip, "err", err)
			} else if !held || owner.ContainerID != le.ContainerID || owner.IfName != le.IfName {
				r.log.Info("dropping a container that was deleted while weftd was down", "ip", ip, "container", le.ContainerID)
				continue
			}
		}
		out[ip] = le
	}
	return out
}

// handle does one plugin request. An ADD returns once the container is
// published and (waiting outside the lock, so ADDs do not queue behind
// each other) the node's policy rules include it. When they do not in
// time, the container is withdrawn again and the ADD fails (fails closed:
// the plugin removes its interface, never attached unpoliced).
func (r *Registry) handle(ctx context.Context, req daemonsock.Request) error {
	if err := r.record(ctx, req); err != nil {
		return err
	}
	if r.changed != nil {
		r.changed()
	}
	if req.Op == daemonsock.OpAdd && r.enforced != nil {
		if err := r.enforced(ctx, req.IP); err != nil {
			del := daemonsock.Request{Op: daemonsock.OpDel, IP: req.IP, ContainerID: req.ContainerID, IfName: req.IfName}
			if derr := r.record(context.WithoutCancel(ctx), del); derr != nil {
				r.log.Warn("withdraw a refused container", "ip", req.IP, "err", derr)
			}
			if r.changed != nil {
				r.changed()
			}
			return err
		}
	}
	return nil
}

// record publishes or withdraws and updates the endpoints file.
func (r *Registry) record(ctx context.Context, req daemonsock.Request) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.snapshot()
	switch req.Op {
	case daemonsock.OpAdd:
		if err := r.checkSubnet(req.IP); err != nil {
			return err
		}
		le := localAttachment{Attachment: workload.Attachment{
			IP: req.IP, Namespace: req.Namespace, Pod: req.Pod, Labels: req.Labels,
			Node: r.pub.Node(), ContainerID: req.ContainerID, IfName: req.IfName,
		}, Network: req.Network, DataDir: req.DataDir}
		if err := r.pub.Publish(ctx, le.Attachment); err != nil {
			return err
		}
		prev, had := r.local[req.IP]
		r.local[req.IP] = le
		if err := r.save(); err != nil {
			if had {
				r.local[req.IP] = prev
			} else {
				delete(r.local, req.IP)
			}
			if _, werr := r.pub.Withdraw(context.WithoutCancel(ctx), req.IP); werr != nil {
				r.log.Warn("withdraw after failing to record", "ip", req.IP, "err", werr)
			}
			return err
		}
		r.log.Info("container published", "ip", req.IP, "namespace", req.Namespace, "pod", req.Pod, "labels", req.Labels, "container", req.ContainerID)
		return nil
	case daemonsock.OpDel:
		var gone []netip.Addr
		for ip, le := range r.local {
			if le.ContainerID == req.ContainerID && le.IfName == req.IfName && (!req.IP.IsValid() || req.IP == ip) {
				gone = append(gone, ip)
			}
		}
		for _, ip := range gone {
			delete(r.local, ip)
		}
		if err := r.save(); err != nil {
			return err
		}
		var errs []error
		for _, ip := range gone {
			if _, err := r.pub.Withdraw(ctx, ip); err != nil {
				errs = append(errs, err)
				continue
			}
			r.log.Info("container withdrawn", "ip", ip, "container", req.ContainerID)
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("unknown op %q", req.Op)
}

// checkSubnet refuses an address outside this node's subnet of its
// family, or of a family the node's network lacks.
func (r *Registry) checkSubnet(ip netip.Addr) error {
	subnet, family := r.subnet, "IPv4"
	if ip.Is6() {
		subnet, family = r.subnet6, "IPv6"
	}
	if !subnet.IsValid() {
		return fmt.Errorf("container address %s: this node's network has no %s subnet", ip, family)
	}
	if !subnet.Contains(ip) {
		return fmt.Errorf("container address %s is not in this node's subnet %s", ip, subnet)
	}
	return nil
}

// snapshot publishes a copy of local for endpoints. Call with mu held
// (or before the registry serves).
func (r *Registry) snapshot() {
	eps := make([]workload.Attachment, 0, len(r.local))
	for _, le := range r.local {
		ep := le.Attachment
		ep.Node = r.pub.Node()
		eps = append(eps, ep)
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].IP.Less(eps[j].IP) })
	r.current.Store(&eps)
}

// Attachments returns this node's containers as the plugin registered them
// (without waiting for a request in progress).
func (r *Registry) Attachments() []workload.Attachment {
	if eps := r.current.Load(); eps != nil {
		return *eps
	}
	return nil
}

// save writes the local records (atomically: temporary file and rename).
func (r *Registry) save() error {
	f := endpointsFile{Endpoints: make([]localAttachment, 0, len(r.local))}
	for _, le := range r.local {
		f.Endpoints = append(f.Endpoints, le)
	}
	sort.Slice(f.Endpoints, func(i, j int) bool { return f.Endpoints[i].IP.Less(f.Endpoints[j].IP) })
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(r.file), 0o755); err != nil {
		return fmt.Errorf("endpoints file: %w", err)
	}
	if err := subnetfile.CheckRegular(r.file); err != nil {
		return fmt.Errorf("endpoints file: %w", err)
	}
	// A fresh temporary name: a fixed one could be a link someone placed.
	tmp, err := os.CreateTemp(filepath.Dir(r.file), "."+filepath.Base(r.file)+"-*")
	if err != nil {
		return fmt.Errorf("endpoints file: %w", err)
	}
	_, err = tmp.Write(append(data, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), r.file)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("endpoints file: %w", err)
	}
	return nil
}

// MaxFile bounds the endpoints file weftd reads at start: a
// record is about 300 bytes, so this holds some 100,000 containers, far
// more than a node's subnet has addresses.
const MaxFile = 32 << 20

// Load reads the records of an endpoints file; a missing file is an empty
// list. The file must be a regular file of at most MaxFile bytes.
func Load(path string) (map[netip.Addr]localAttachment, error) {
	data, err := subnetfile.ReadBounded(path, MaxFile)
	if errors.Is(err, os.ErrNotExist) {
		return map[netip.Addr]localAttachment{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("endpoints file: %w", err)
	}
	var f endpointsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("endpoints file %s: %w", path, err)
	}
	out := make(map[netip.Addr]localAttachment, len(f.Endpoints))
	for _, le := range f.Endpoints {
		if err := le.Validate(); err != nil {
			return nil, fmt.Errorf("endpoints file %s: %w", path, err)
		}
		out[le.IP] = le
	}
	return out, nil
}
