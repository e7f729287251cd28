package subnet

import (
	"strings"
	"testing"
)

func TestCheckEndpoints(t *testing.T) {
	for _, ok := range [][]string{
		{"http://127.0.0.1:2379"},
		{"https://etcd.example:2379", "http://[2001:db8::1]:2379/"},
		{"unix:///run/etcd.sock"},
	} {
		if err := CheckEndpoints(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, tc := range []struct {
		eps  []string
		want string
	}{
		{nil, "no etcd endpoints"},
		{[]string{"htp//10.0.0.1:2379"}, `"htp//10.0.0.1:2379"`},
		{[]string{"10.0.0.1:2379"}, "want http://host:port"},
		{[]string{"ftp://10.0.0.1:2379"}, "want http://host:port"},
		{[]string{"http://"}, "no host"},
		{[]string{"http://127.0.0.1:2379", "http://x:2379/v2/keys"}, "unexpected path"},
		{[]string{"http://a b:1"}, `"http://a b:1"`},
	} {
		err := CheckEndpoints(tc.eps)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want an error containing %q, got %v", tc.eps, tc.want, err)
		}
	}
}

func TestClientOptionsCheck(t *testing.T) {
	good := ClientOptions{Endpoints: []string{" http://127.0.0.1:2379 "}}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opts ClientOptions
		want string
	}{
		{ClientOptions{Endpoints: []string{"htp//x"}}, "htp//x"},
		{ClientOptions{Endpoints: []string{"http://a:1"}, CertFile: "/c"}, "go together"},
		{ClientOptions{Endpoints: []string{"http://a:1"}, Username: "u"}, "go together"},
		{ClientOptions{Endpoints: []string{"https://a:1"}, CAFile: "/nonexistent/ca.pem"}, "/nonexistent/ca.pem"},
	} {
		err := tc.opts.Check()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: want an error containing %q, got %v", tc.opts, tc.want, err)
		}
	}
}
