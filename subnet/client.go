package subnet

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// DefaultDialTimeout bounds connecting to etcd.
const DefaultDialTimeout = 5 * time.Second

// ClientOptions say how to reach etcd.
type ClientOptions struct {
	Endpoints []string
	// CAFile verifies the servers; CertFile and KeyFile are the client
	// certificate. Any of them (or an https endpoint) turns TLS on.
	CAFile, CertFile, KeyFile string
	Username, Password        string
	// DialTimeout (default 5s).
	DialTimeout time.Duration
}

// AddCredentialFlags defines the flags that weftd and weftctl share for
// etcd's TLS and authentication, bound to o's fields: --etcd-cafile,
// --etcd-certfile, --etcd-keyfile, --etcd-username, --etcd-password.
func (o *ClientOptions) AddCredentialFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.CAFile, "etcd-cafile", "", "CA file to verify etcd servers (TLS)")
	fs.StringVar(&o.CertFile, "etcd-certfile", "", "client certificate for etcd (TLS)")
	fs.StringVar(&o.KeyFile, "etcd-keyfile", "", "client key for etcd (TLS)")
	fs.StringVar(&o.Username, "etcd-username", "", "username for etcd authentication")
	fs.StringVar(&o.Password, "etcd-password", "", "password for etcd authentication")
}

// Liveness of the etcd connection: ping every keepAliveTime, give up on a
// connection after keepAliveTimeout without an answer, and reconnect with
// at most maxReconnectDelay between attempts.
const (
	keepAliveTime     = 10 * time.Second
	keepAliveTimeout  = 5 * time.Second
	maxReconnectDelay = 2 * time.Second
)

// MaxRecvMsgSize caps one message the client accepts from etcd. Listings
// are paged and watches fragmented to fit it, so junk under the prefix
// cannot make weftd buffer it all at once. It must stay above etcd's
// --max-request-bytes (1.5 MiB by default): a single larger key-value could
// not be received at all.
const MaxRecvMsgSize = 16 << 20

// NewClient returns an etcd client. It does not wait for a connection:
// use Ping to check that etcd answers.
func NewClient(opts ClientOptions) (*clientv3.Client, error) {
	eps := make([]string, 0, len(opts.Endpoints))
	for _, e := range opts.Endpoints {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 {
		return nil, errors.New("etcd client: no endpoints")
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("etcd client: the certificate and key files go together (set both or neither)")
	}
	cfg := clientv3.Config{
		Endpoints:   eps,
		DialTimeout: opts.DialTimeout,
		Username:    opts.Username,
		Password:    opts.Password,
		Logger:      zap.NewNop(),
		// Without keepalives a connection that was cut (a partition, not a
		// closed socket) stays "up" while TCP retransmits with exponential
		// backoff, so the client could need many seconds after the network
		// heals to talk to etcd again. The pings find a dead connection and
		// the short reconnect backoff brings a new one soon after etcd is
		// back. 10 s is above etcd's default --grpc-keepalive-min-time (5 s).
		MaxCallRecvMsgSize:   MaxRecvMsgSize,
		DialKeepAliveTime:    keepAliveTime,
		DialKeepAliveTimeout: keepAliveTimeout,
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 200 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxReconnectDelay},
			MinConnectTimeout: keepAliveTimeout,
		})},
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	tlsCfg, err := clientTLS(opts, eps)
	if err != nil {
		return nil, err
	}
	cfg.TLS = tlsCfg
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", strings.Join(eps, ","), err)
	}
	return cli, nil
}

func clientTLS(opts ClientOptions, eps []string) (*tls.Config, error) {
	info := transport.TLSInfo{CertFile: opts.CertFile, KeyFile: opts.KeyFile, TrustedCAFile: opts.CAFile}
	if !info.Empty() || opts.CAFile != "" {
		cfg, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd client TLS (ca %q, cert %q, key %q): %w", opts.CAFile, opts.CertFile, opts.KeyFile, err)
		}
		return cfg, nil
	}
	for _, e := range eps {
		if strings.HasPrefix(e, "https://") || strings.HasPrefix(e, "unixs://") {
			return &tls.Config{MinVersion: tls.VersionTLS12}, nil
		}
	}
	return nil, nil
}

// Ping checks that etcd answers (a read of one key), bounded by timeout.
// The error names the endpoints and, where gRPC reports one, the cause
// (e.g. a certificate signed by an unknown authority).
func Ping(ctx context.Context, cli *clientv3.Client, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := cli.Get(ctx, "health", clientv3.WithCountOnly())
	if errors.Is(err, rpctypes.ErrPermissionDenied) {
		// etcd answered; a user whose role covers only weft's prefix
		// (the recommended set-up) may not read this key.
		err = nil
	}
	if err != nil {
		return fmt.Errorf("etcd at %s not reachable within %s: %w", strings.Join(cli.Endpoints(), ","), timeout, err)
	}
	return nil
}

// SplitEndpoints turns a comma-separated --etcd-endpoints value into a list,
// dropping blanks.
func SplitEndpoints(s string) []string {
	var eps []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	return eps
}
