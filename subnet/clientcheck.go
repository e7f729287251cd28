package subnet

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// CheckEndpoints reports the first etcd endpoint that is not a URL the
// client can dial (http://host:port, https://host:port, unix://path,
// unixs://path), naming it, so that a typo such as "htp//10.0.0.1:2379"
// is rejected as a configuration error instead of failing every request.
func CheckEndpoints(eps []string) error {
	if len(eps) == 0 {
		return errors.New("no etcd endpoints")
	}
	for _, ep := range eps {
		u, err := url.Parse(ep)
		if err != nil {
			return fmt.Errorf("etcd endpoint %q: %w (want http://host:port or https://host:port)", ep, err)
		}
		switch u.Scheme {
		case "http", "https":
			if u.Host == "" || u.Hostname() == "" {
				return fmt.Errorf("etcd endpoint %q: no host (want %s://host:port)", ep, u.Scheme)
			}
			if u.Path != "" && u.Path != "/" {
				return fmt.Errorf("etcd endpoint %q: unexpected path %q (want %s://host:port)", ep, u.Path, u.Scheme)
			}
		case "unix", "unixs":
			if u.Host == "" && u.Path == "" {
				return fmt.Errorf("etcd endpoint %q: no socket path (want %s://path)", ep, u.Scheme)
			}
		default:
			return fmt.Errorf("etcd endpoint %q: want http://host:port or https://host:port", ep)
		}
	}
	return nil
}

// Check validates the options without connecting: the endpoints, and the
// TLS files (they must exist and load). An error here is one that only a
// change of configuration fixes; NewClient's other errors (etcd
// unreachable while authenticating) may pass on their own.
func (o ClientOptions) Check() error {
	eps := make([]string, 0, len(o.Endpoints))
	for _, e := range o.Endpoints {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	if err := CheckEndpoints(eps); err != nil {
		return err
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return errors.New("etcd client: the certificate and key files go together (set both or neither)")
	}
	if (o.Username == "") != (o.Password == "") {
		return errors.New("etcd client: the username and password go together (set both or neither)")
	}
	_, err := clientTLS(o, eps)
	return err
}
