package subnet

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestFlagsFromEnv(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	endpoints := fs.String("etcd-endpoints", "http://127.0.0.1:2379", "")
	prefix := fs.String("etcd-prefix", "/weft/network", "")
	ttl := fs.Duration("subnet-lease-ttl", time.Hour, "")
	t.Setenv("WEFTD_ETCD_ENDPOINTS", "http://a:1,http://b:2")
	t.Setenv("WEFTD_SUBNET_LEASE_TTL", "90s")
	t.Setenv("WEFTD_ETCD_PREFIX", "/env")
	if err := FlagsFromEnv(fs, "WEFTD"); err != nil {
		t.Fatal(err)
	}
	// The command line wins over the environment.
	if err := fs.Parse([]string{"--etcd-prefix", "/cli"}); err != nil {
		t.Fatal(err)
	}
	if *endpoints != "http://a:1,http://b:2" || *ttl != 90*time.Second || *prefix != "/cli" {
		t.Errorf("got %q %s %q", *endpoints, *ttl, *prefix)
	}
	if got := FlagEnvName("WEFTCTL_", "etcd-cafile"); got != "WEFTCTL_ETCD_CAFILE" {
		t.Errorf("FlagEnvName = %q", got)
	}

	bad := flag.NewFlagSet("y", flag.ContinueOnError)
	bad.Duration("subnet-lease-ttl", time.Hour, "")
	t.Setenv("WEFTCTL_SUBNET_LEASE_TTL", "soon")
	err := FlagsFromEnv(bad, "WEFTCTL")
	if err == nil || !strings.Contains(err.Error(), "WEFTCTL_SUBNET_LEASE_TTL") {
		t.Errorf("bad value: err = %v, want it to name the variable", err)
	}
}

// The credential flags weftd and weftctl share fill ClientOptions, from
// the command line or the environment (the command line wins).
func TestAddCredentialFlags(t *testing.T) {
	var o ClientOptions
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	o.AddCredentialFlags(fs)
	t.Setenv("WEFTCTL_ETCD_PASSWORD", "from-env")
	t.Setenv("WEFTCTL_ETCD_USERNAME", "env-user")
	if err := FlagsFromEnv(fs, "WEFTCTL"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--etcd-cafile", "ca.pem", "--etcd-certfile", "c.pem", "--etcd-keyfile", "k.pem", "--etcd-username", "weft-node"}); err != nil {
		t.Fatal(err)
	}
	want := ClientOptions{CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem", Username: "weft-node", Password: "from-env"}
	if o.CAFile != want.CAFile || o.CertFile != want.CertFile || o.KeyFile != want.KeyFile || o.Username != want.Username || o.Password != want.Password {
		t.Fatalf("options %+v, want %+v", o, want)
	}
}

// Issue 24 item 8: a bad flag value said only "parse error".
func TestExplainFlagError(t *testing.T) {
	newFS := func() *flag.FlagSet {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Duration("subnet-lease-ttl", time.Hour, "")
		fs.Int("queues", 1, "")
		fs.Bool("ip-masq", false, "")
		fs.String("iface", "", "")
		return fs
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--subnet-lease-ttl", "banana"}, `--subnet-lease-ttl "banana": want a duration such as 30s, 5m or 24h`},
		{[]string{"--subnet-lease-ttl=24"}, `--subnet-lease-ttl "24": want a duration such as 30s, 5m or 24h`},
		{[]string{"--queues", "two"}, `--queues "two": want an integer`},
		{[]string{"--queues", "99999999999999999999"}, `--queues "99999999999999999999": want an integer`},
		{[]string{"--ip-masq=maybe"}, `--ip-masq "maybe": want true or false`},
		{[]string{"--ip-masq=\"q\\\""}, `--ip-masq "\"q\\\"": want true or false`},
		{[]string{"--nope"}, "flag provided but not defined: -nope"},
		{[]string{"--iface"}, "flag needs an argument: -iface"},
	} {
		fs := newFS()
		err := ExplainFlagError(fs, fs.Parse(tc.args))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q: %v, want %s", tc.args, err, tc.want)
		}
	}
	fs := newFS()
	if err := ExplainFlagError(fs, fs.Parse([]string{"-h"})); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp as it is", err)
	}
	t.Setenv("WEFTD_SUBNET_LEASE_TTL", "banana")
	err := FlagsFromEnv(newFS(), "WEFTD")
	if want := `environment variable WEFTD_SUBNET_LEASE_TTL="banana" (flag --subnet-lease-ttl): want a duration such as 30s, 5m or 24h`; err == nil || err.Error() != want {
		t.Errorf("from the environment: %v, want %s", err, want)
	}
}
