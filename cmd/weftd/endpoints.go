package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/weftnet/weft/cni"
	"github.com/weftnet/weft/cni/daemonsock"
	"github.com/weftnet/weft/subnet"
)

// endpointRegistry serves the CNI plugin's socket: it publishes the
// node's containers in etcd (through subnet.EndpointPublisher) and keeps
// them in a local file, so that a restarted weftd publishes them again.
type endpointRegistry struct {
	pub  *subnet.EndpointPublisher
	file string
	log  *slog.Logger
	// subnet is this node's: an endpoint outside it would take over
	// another node's container's key in etcd (and, merged into this
	// node's views, override its record here).
	subnet netip.Prefix

	mu    sync.Mutex // serialises requests and file writes
	local map[netip.Addr]localEndpoint
	// current is a copy of local (as subnet.Endpoints, sorted) for the
	// policy engine, which must not wait for mu: a request holds it while
	// etcd does not answer.
	current atomic.Pointer[[]subnet.Endpoint]
	// enforced, if set, returns nil once policy rules include a new
	// container, an error if they are not in force in time.
	enforced func(context.Context, netip.Addr) error
	// changed, if set, is called after every change of local.
	changed func()
}

// localEndpoint is one record of the endpoints file.
type localEndpoint struct {
	subnet.Endpoint
	Network string `json:"network,omitempty"`
	DataDir string `json:"dataDir,omitempty"`
}

// endpointsFile is the file's JSON.
type endpointsFile struct {
	Endpoints []localEndpoint `json:"endpoints"`
}

// startEndpoints publishes the containers this node had before a restart,
// then serves the CNI socket. It returns once the socket listens. sub is
// the node's subnet: containers outside it are refused.
func (d *weftd) startEndpoints(ctx context.Context, wg *sync.WaitGroup, node string, sub netip.Prefix) error {
	if d.opts.cniSocket == "" {
		d.log.Warn("--cni-socket is empty: containers are not published, network policy cannot apply to them")
		return nil
	}
	r := &endpointRegistry{file: d.opts.endpointsFile, log: d.log.With("component", "endpoints"), enforced: d.waitPolicyFor,
		subnet: sub.Masked()}
	local, err := loadEndpointsFile(r.file)
	if err != nil {
		return configErrorf("%w (fix or remove the file; it lists this node's containers)", err)
	}
	r.local = r.stillAttached(local)
	r.pub = d.mgr.NewEndpointPublisher(node, d.opts.endpointTTL)
	r.snapshot()
	if p := d.state.policy.Load(); p != nil {
		p.SetLocal(r.endpoints) // this node's rules always include its own containers
		r.changed = p.LocalChanged
	}
	eps := make([]subnet.Endpoint, 0, len(r.local))
	for _, le := range r.local {
		eps = append(eps, le.Endpoint)
	}
	if _, err := retry(ctx, d.attempts(), "publish this node's endpoints", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, r.pub.Start(ctx, eps)
	}); err != nil {
		return err
	}
	if err := r.save(); err != nil {
		return err
	}
	ln, err := daemonsock.Listen(d.opts.cniSocket)
	if err != nil {
		return configErrorf("--cni-socket: %w", err)
	}
	r.log.Info("serving the CNI socket", "socket", d.opts.cniSocket, "endpoints", len(eps), "ttl", d.opts.endpointTTL)
	wg.Go(func() { r.pub.Run(ctx) })
	wg.Go(func() {
		if err := daemonsock.Serve(ctx, ln, 0, r.handle); err != nil {
			r.log.Error("CNI socket failed", "err", err)
		}
	})
	return nil
}

// stillAttached drops records whose address the plugin's store no longer
// gives to the same container (a DEL that happened while weftd was down).
func (r *endpointRegistry) stillAttached(local map[netip.Addr]localEndpoint) map[netip.Addr]localEndpoint {
	out := make(map[netip.Addr]localEndpoint, len(local))
	for ip, le := range local {
		if !r.subnet.Contains(ip) {
			r.log.Warn("dropping a container outside this node's subnet", "ip", ip, "subnet", r.subnet, "container", le.ContainerID)
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
func (r *endpointRegistry) handle(ctx context.Context, req daemonsock.Request) error {
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
func (r *endpointRegistry) record(ctx context.Context, req daemonsock.Request) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.snapshot()
	switch req.Op {
	case daemonsock.OpAdd:
		if !r.subnet.Contains(req.IP) {
			return fmt.Errorf("container address %s is not in this node's subnet %s", req.IP, r.subnet)
		}
		le := localEndpoint{Endpoint: subnet.Endpoint{
			IP: req.IP, Namespace: req.Namespace, Pod: req.Pod, Labels: req.Labels,
			Node: r.pub.Node(), ContainerID: req.ContainerID, IfName: req.IfName,
		}, Network: req.Network, DataDir: req.DataDir}
		if err := r.pub.Publish(ctx, le.Endpoint); err != nil {
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

// snapshot publishes a copy of local for endpoints. Call with mu held
// (or before the registry serves).
func (r *endpointRegistry) snapshot() {
	eps := make([]subnet.Endpoint, 0, len(r.local))
	for _, le := range r.local {
		ep := le.Endpoint
		ep.Node = r.pub.Node()
		eps = append(eps, ep)
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].IP.Less(eps[j].IP) })
	r.current.Store(&eps)
}

// endpoints returns this node's containers as the plugin registered them
// (without waiting for a request in progress).
func (r *endpointRegistry) endpoints() []subnet.Endpoint {
	if eps := r.current.Load(); eps != nil {
		return *eps
	}
	return nil
}

// save writes the local records (atomically: temporary file and rename).
func (r *endpointRegistry) save() error {
	f := endpointsFile{Endpoints: make([]localEndpoint, 0, len(r.local))}
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
	if err := checkRegular(r.file); err != nil {
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

// maxEndpointsFile bounds the endpoints file weftd reads at start: a
// record is about 300 bytes, so this holds some 100,000 containers, far
// more than a node's subnet has addresses.
const maxEndpointsFile = 32 << 20

// loadEndpointsFile reads the records; a missing file is an empty list.
// The file must be a regular file of at most maxEndpointsFile bytes.
func loadEndpointsFile(path string) (map[netip.Addr]localEndpoint, error) {
	data, err := readBounded(path, maxEndpointsFile)
	if errors.Is(err, os.ErrNotExist) {
		return map[netip.Addr]localEndpoint{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("endpoints file: %w", err)
	}
	var f endpointsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("endpoints file %s: %w", path, err)
	}
	out := make(map[netip.Addr]localEndpoint, len(f.Endpoints))
	for _, le := range f.Endpoints {
		if err := le.Validate(); err != nil {
			return nil, fmt.Errorf("endpoints file %s: %w", path, err)
		}
		out[le.IP] = le
	}
	return out, nil
}

// readBounded reads a regular file of at most limit bytes; anything else
// (a device such as /dev/zero, a FIFO, a larger file) is an error naming
// the limit, never an endless read. It opens without blocking, so a FIFO
// does not wait for a writer.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fileKind(fi.Mode()))
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes (%d MiB), the most weftd reads", path, limit, limit>>20)
	}
	return data, nil
}
