// Package embedded runs an etcd member inside weftd (--embedded-etcd-dir)
// and in tests: its configuration, its log routed to slog, and a stop that
// ends client streams at once. Apart from subnet so that only what starts
// a member links etcd's server.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Defaults of Options.
const (
	DefaultClientURL    = "http://127.0.0.1:2379"
	DefaultName         = "weft"
	DefaultReadyTimeout = time.Minute
)

// Options configure an in-process etcd member.
type Options struct {
	// Dir holds the member's data (required).
	Dir string
	// ClientURL to listen on and advertise (default http://127.0.0.1:2379).
	ClientURL string
	// PeerURL to listen on and advertise (default: client host, port+1).
	PeerURL string
	// Name of the member (default "weft").
	Name string
	// Logger receives start/stop messages and etcd's own log entries at
	// EtcdLogLevel and above (default slog.Default()).
	Logger *slog.Logger

	// InitialCluster ("name=peerURL,...") for a multi-member cluster
	// (default: this member alone).
	InitialCluster string
	// ClusterToken tells clusters apart (default "weft-etcd").
	ClusterToken string
	// TLS for the client URL: server certificate and key, and a CA that
	// client certificates must be signed by (ClientCertAuth).
	ServerCertFile, ServerKeyFile, ClientCAFile string
	ClientCertAuth                              bool
	// EtcdLogLevel is the least level of etcd's own entries that reach
	// Logger (default "warn").
	EtcdLogLevel string
	// UnsafeNoFsync trades durability for speed (tests only).
	UnsafeNoFsync bool
	// ReadyTimeout bounds the wait for the member to serve (default 1m).
	ReadyTimeout time.Duration
	// MaxRequestBytes is etcd's --max-request-bytes (0: etcd's default,
	// 1.5 MiB). Keep it below the client's MaxRecvMsgSize.
	MaxRequestBytes uint
}

// Etcd is a running in-process etcd member.
type Etcd struct {
	etcd      *embed.Etcd
	clientURL string
	ports     []uint16 // TCP ports it listens on, client and peer
	log       *slog.Logger
	stop      context.CancelFunc // ends client streams and quiets etcd's shutdown errors
}

// Start starts an etcd member and waits until it serves clients.
func Start(opts Options) (*Etcd, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	stopping, stop := context.WithCancel(context.Background())
	cfg, err := embeddedConfig(opts)
	if err == nil {
		err = routeEtcdLogs(cfg, log, stopping)
	}
	if err != nil {
		stop()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	endStreamsOnStop(cfg, stopping)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		stop()
		return nil, fmt.Errorf("embedded etcd in %s: %w", opts.Dir, err)
	}
	timeout := opts.ReadyTimeout
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: %w", opts.Dir, err)
	case <-time.After(timeout):
		stop()
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: not ready after %s", opts.Dir, timeout)
	}
	clientURL := cfg.AdvertiseClientUrls[0].String()
	log.Info("embedded etcd ready", "dir", opts.Dir, "client_url", clientURL, "name", cfg.Name)
	return &Etcd{etcd: e, clientURL: clientURL, ports: listenPorts(cfg), log: log, stop: stop}, nil
}

func embeddedConfig(opts Options) (*embed.Config, error) {
	if opts.Dir == "" {
		return nil, errors.New("no data directory")
	}
	cfg := embed.NewConfig()
	cfg.Dir = opts.Dir
	cfg.Name = opts.Name
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	clientRaw := opts.ClientURL
	if clientRaw == "" {
		clientRaw = DefaultClientURL
	}
	clientURL, err := url.Parse(clientRaw)
	if err != nil || clientURL.Host == "" {
		return nil, fmt.Errorf("client URL %q: want scheme://host:port", clientRaw)
	}
	peerURL, err := peerURLFor(opts.PeerURL, clientURL)
	if err != nil {
		return nil, err
	}
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = opts.InitialCluster
	if cfg.InitialCluster == "" {
		cfg.InitialCluster = cfg.Name + "=" + peerURL.String()
	}
	cfg.InitialClusterToken = opts.ClusterToken
	if cfg.InitialClusterToken == "" {
		cfg.InitialClusterToken = "weft-etcd"
	}
	cfg.Logger = "zap"
	cfg.LogLevel = opts.EtcdLogLevel
	if cfg.LogLevel == "" {
		cfg.LogLevel = "warn"
	}
	cfg.UnsafeNoFsync = opts.UnsafeNoFsync
	if opts.MaxRequestBytes > 0 {
		cfg.MaxRequestBytes = opts.MaxRequestBytes
	}
	cfg.ClientTLSInfo.CertFile = opts.ServerCertFile
	cfg.ClientTLSInfo.KeyFile = opts.ServerKeyFile
	cfg.ClientTLSInfo.TrustedCAFile = opts.ClientCAFile
	cfg.ClientTLSInfo.ClientCertAuth = opts.ClientCertAuth
	return cfg, nil
}

// peerURLFor parses raw, or derives http://<client host>:<client port+1>.
func peerURLFor(raw string, client *url.URL) (*url.URL, error) {
	if raw != "" {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("peer URL %q: want scheme://host:port", raw)
		}
		return u, nil
	}
	host, portStr, err := net.SplitHostPort(client.Host)
	if err != nil {
		return nil, fmt.Errorf("client URL %s: %w", client, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port >= 65535 {
		return nil, fmt.Errorf("client URL %s: bad port", client)
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(host, strconv.Itoa(port+1))}, nil
}

// listenPorts returns the TCP ports of cfg's client and peer URLs, once each.
func listenPorts(cfg *embed.Config) []uint16 {
	var ports []uint16
	for _, u := range append(append([]url.URL{}, cfg.ListenClientUrls...), cfg.ListenPeerUrls...) {
		p, err := strconv.ParseUint(u.Port(), 10, 16)
		if err != nil || p == 0 || slices.Contains(ports, uint16(p)) {
			continue
		}
		ports = append(ports, uint16(p))
	}
	return ports
}

// ListenPorts are the TCP ports the member listens on (client and peer),
// for the container guard to keep containers from.
func (e *Etcd) ListenPorts() []uint16 { return slices.Clone(e.ports) }

// Endpoints returns the client URL(s) to give NewClient.
func (e *Etcd) Endpoints() []string { return []string{e.clientURL} }

// Err reports fatal errors of the running member.
func (e *Etcd) Err() <-chan error { return e.etcd.Err() }

// Close stops the member and waits for it to shut down. Streams of
// connected clients (other nodes' watches) end at once: etcd would wait for
// them for its request timeout (7 s) before cutting them.
func (e *Etcd) Close() {
	e.stop()
	e.etcd.Close()
	e.log.Info("embedded etcd stopped", "client_url", e.clientURL)
}
