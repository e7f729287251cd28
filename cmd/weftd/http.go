package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/nodestatus"
	"github.com/weftnet/weft/policy/engine"
)

// startHTTP serves /healthz, /readyz, /metrics and /status.
func (d *weftd) startHTTP() (*http.Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		d.state.etcdLatency,
		newStatsCollector(d.state),
		&d.state.guard,
		engine.NewCollector(d.state.policy.Load),
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", d.serveReadyz)
	mux.HandleFunc("GET /status", d.serveStatus)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))

	addr := net.JoinHostPort(d.opts.healthzIP, strconv.Itoa(d.opts.healthzPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("healthz listener %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("http server", "err", err)
		}
	}()
	d.log.Info("serving health and metrics", "addr", addr)
	return srv, nil
}

// readiness reports whether the node forwards traffic (lease held, data
// path running) and whether etcd has been reachable within the grace
// period. A node that forwards but lost etcd is "degraded".
func (d *weftd) readiness(now time.Time) nodestatus.Readiness {
	r := nodestatus.Readiness{Status: nodestatus.Ready}
	lease := d.state.lease.Load()
	r.Lease = lease != nil && (lease.Expiration.IsZero() || lease.Expiration.After(now))
	r.DataPath = d.state.dataRunning.Load()
	last := d.state.etcdOK.Load()
	if last != 0 {
		r.EtcdLastSeen = time.Unix(0, last).UTC().Format(time.RFC3339Nano)
	}
	switch {
	case !r.Lease:
		r.Status, r.Reason = nodestatus.NotReady, "no subnet lease held"
	case d.state.deviceLost.Load():
		r.DataPath = false
		r.Status, r.Reason = nodestatus.NotReady, "TUN device removed or down"
	case !r.DataPath:
		r.Status, r.Reason = nodestatus.NotReady, "data path not running"
	case !d.policyInForce():
		r.Status, r.Reason = nodestatus.NotReady, "network policy not in force yet (the policy view did not load or its rules could not be installed; see the log): new containers are refused"
	case last == 0 || now.Sub(time.Unix(0, last)) > d.opts.etcdGrace:
		r.Status, r.Reason = nodestatus.Degraded, fmt.Sprintf("etcd unreachable for more than %s; forwarding on the last known peers", d.opts.etcdGrace)
	}
	return r
}

// policyInForce tells whether network policy, when enforced, has rules
// built from a view in force.
func (d *weftd) policyInForce() bool {
	p := d.state.policy.Load()
	return p == nil || p.InForce()
}

func (d *weftd) serveReadyz(w http.ResponseWriter, r *http.Request) {
	rd := d.readiness(time.Now())
	if rd.Status != nodestatus.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	writeJSON(w, rd)
}

func (d *weftd) serveStatus(w http.ResponseWriter, r *http.Request) {
	st := nodestatus.Status{Peers: []nodestatus.Peer{}, Counters: map[string]any{}, Readiness: d.readiness(time.Now())}
	if l := d.state.lease.Load(); l != nil {
		st.Node.Subnet = prefixString(l.Subnet)
		st.Node.IPv6Subnet = prefixString(l.IPv6Subnet)
		if !l.Expiration.IsZero() {
			st.Node.LeaseExpiry = l.Expiration.UTC().Format(time.RFC3339)
		}
	}
	if ep := d.state.endpoint.Load(); ep != nil {
		if ep.Addr().Is4() {
			st.Node.PublicIP = ep.Addr().String()
		}
		st.Node.Port = int(ep.Port())
	}
	if ip := d.state.publicIPv6.Load(); ip != nil {
		st.Node.PublicIPv6 = ip.String()
	}
	if be := d.state.backend.Load(); be != nil {
		for _, p := range (*be).Peers() {
			st.Peers = append(st.Peers, nodestatus.Peer{Subnet: prefixString(p.Subnet), IPv6Subnet: prefixString(p.IPv6Subnet), Endpoint: p.Endpoint, Mode: p.Mode})
		}
		if c, ok := (*be).(backend.Counters); ok {
			st.Counters = c.Counters()
		}
	}
	if p := d.state.policy.Load(); p != nil {
		ps := p.Status()
		st.Policy = &nodestatus.Policy{Revision: ps.Revision, Rejected: []nodestatus.RejectedPolicy{}}
		for _, r := range ps.Rejected {
			st.Policy.Rejected = append(st.Policy.Rejected, nodestatus.RejectedPolicy(r))
		}
	}
	writeJSON(w, st)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// prefixString is p's text, "" when p is invalid (a family the network
// does not have).
func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}
