package subnet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Connect builds a client with NewClient and checks that etcd answers
// within the dial timeout. When it does not, the error says why as well as
// it can be found out (connection refused, certificate signed by an unknown
// authority, client certificate required, plain http to a TLS port, ...).
func Connect(ctx context.Context, opts ClientOptions) (*clientv3.Client, error) {
	cli, err := NewClient(opts)
	if err != nil {
		return nil, err
	}
	timeout := opts.DialTimeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	if err := Ping(ctx, cli, timeout); err != nil {
		cli.Close()
		if cause := Probe(ctx, opts); cause != nil {
			return nil, fmt.Errorf("%w (%v)", err, cause)
		}
		return nil, err
	}
	return cli, nil
}

// Probe connects to every endpoint by hand (TCP, then TLS if configured)
// to find out why etcd does not answer. It returns nil if nothing is
// visibly wrong.
func Probe(ctx context.Context, opts ClientOptions) error {
	timeout := opts.DialTimeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	tlsCfg, err := clientTLS(opts, opts.Endpoints)
	if err != nil {
		return err
	}
	var errs []error
	for _, ep := range opts.Endpoints {
		if err := probeEndpoint(ctx, strings.TrimSpace(ep), tlsCfg, timeout); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ep, err))
		}
	}
	return errors.Join(errs...)
}

func probeEndpoint(ctx context.Context, ep string, tlsCfg *tls.Config, timeout time.Duration) error {
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" {
		return fmt.Errorf("not a URL like http://host:port")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	if u.Scheme != "https" {
		if tlsCfg != nil {
			return errors.New("TLS files given but the endpoint is not https://")
		}
		return probePlain(conn)
	}
	if tlsCfg == nil {
		tlsCfg = &tls.Config{}
	}
	cfg := tlsCfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	// With TLS 1.3 a server that wants a client certificate says so only
	// after the handshake: wait briefly for its alert.
	tc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := tc.Read(make([]byte, 1)); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return fmt.Errorf("TLS: %w", err)
	}
	return nil
}

// probePlain speaks HTTP/1.1 to see whether the port wants TLS.
func probePlain(conn net.Conn) error {
	if _, err := conn.Write([]byte("GET /health HTTP/1.1\r\nHost: etcd\r\n\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if n == 0 && err != nil {
		return fmt.Errorf("the server closed the connection on plain HTTP (%v); if it uses TLS, use an https:// endpoint with --etcd-cafile/--etcd-certfile/--etcd-keyfile", err)
	}
	reply := string(buf[:n])
	if strings.Contains(reply, "HTTPS") || (n > 0 && buf[0] == 0x15) {
		return errors.New("the server wants TLS: use an https:// endpoint with --etcd-cafile/--etcd-certfile/--etcd-keyfile")
	}
	return nil
}
