//go:build !unit

package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestFlagsDefaultsAndEnv(t *testing.T) {
	t.Setenv("WEFTD_ETCD_PREFIX", "/other")
	t.Setenv("WEFTD_SUBNET_LEASE_TTL", "1m")
	t.Setenv("WEFTD_PUBLIC_IPV6", "2001:db8::1")
	o, err := parseFlags([]string{"--public-ip", "192.0.2.1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.etcdPrefix != "/other" || o.leaseTTL != time.Minute || o.publicIP != "192.0.2.1" || o.publicIPv6 != "2001:db8::1" {
		t.Fatalf("env or flag not applied: %+v", o)
	}
	if got := o.endpoints(); len(got) != 1 || got[0] != "http://127.0.0.1:2379" {
		t.Fatalf("default endpoints %v", got)
	}
}

func TestFlagsEmbeddedEtcdIsTheDefaultEndpoint(t *testing.T) {
	o, err := parseFlags([]string{"--embedded-etcd-dir", "/tmp/x", "--embedded-etcd-listen", "http://192.0.2.1:2379"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.endpoints(); len(got) != 1 || got[0] != "http://192.0.2.1:2379" {
		t.Fatalf("endpoints %v, want the embedded etcd", got)
	}
	o, err = parseFlags([]string{"--embedded-etcd-dir", "/tmp/x", "--etcd-endpoints", "http://a:1, http://b:2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.endpoints(); len(got) != 2 || got[1] != "http://b:2" {
		t.Fatalf("explicit endpoints %v", got)
	}
}

func TestFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-format", "xml"}, "--log-format"},
		{[]string{"--subnet-file", "/run/x/subnet.env", "--flannel-subnet-file", "/run/x//subnet.env"}, "need separate files"},
		{[]string{"--subnet-lease-ttl", "1s"}, "too short"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"--no-such-flag"}, "not defined"},
		{[]string{"--etcd-endpoints", "htp//10.0.0.1:2379"}, "htp//10.0.0.1:2379"},
		{[]string{"--etcd-endpoints", "http://127.0.0.1:2379,127.0.0.1:2380"}, "--etcd-endpoints"},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: want error containing %q, got %v", tc.args, tc.want, err)
		}
	}
}

func TestRunRejectsBadConfigBeforeTouchingAnything(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"Network":"10.244.0.0/16","Backend":{"Type":"ipip"}}`:                 "Backend.Type",
		`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":16777216}}`: "Backend.VNI 16777216 out of range",
		`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","Port":65536}}`:   "Backend.Port 65536",
		`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","MTU":100}}`:      "Backend.MTU 100 out of range",
		`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VtepMAC":"x"}}`:  `unknown field \"VtepMAC\"`,
		// Issue 21: IPv6 fields that do not fit.
		`{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":48}`:  "IPv6SubnetLen 48 does not fit IPv6Network fd10:244::/56",
		`{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":129}`: "IPv6SubnetLen 129: must be /126 or shorter",
		`{"Network":"10.244.0.0/16","EnableIPv6":true}`:                                                   "IPv6Network: missing",
	} {
		var stderr strings.Builder
		code := run([]string{"--network-config", cfg,
			"--healthz-port", "0", "--etcd-endpoints", "http://127.0.0.1:1"}, &stderr)
		if code != exitConfig {
			t.Errorf("weftd exited %d on %s, want %d (EX_CONFIG)", code, cfg, exitConfig)
		}
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("%s: error does not say %q: %s", cfg, want, stderr.String())
		}
	}
}

func TestHelpNamesTheEnvironment(t *testing.T) {
	var usage strings.Builder
	code := run([]string{"--help"}, &usage)
	out := usage.String()
	if code != exitClean || !strings.Contains(out, "WEFTD_<FLAG>") || !strings.Contains(out, "WEFTD_ETCD_ENDPOINTS") ||
		!strings.Contains(out, "-etcd-endpoints") {
		t.Fatalf("weftd --help: exit %d, does not say that each flag is also WEFTD_<FLAG>:\n%s", code, out)
	}
	// What the help says holds: the environment sets the flag, the
	// command line wins.
	t.Setenv("WEFTD_IP_MASQ", "true")
	t.Setenv("WEFTD_TUN_NAME", "envtun")
	o, err := parseFlags([]string{"--tun-name", "flagtun"}, io.Discard)
	if err != nil || !o.ipMasq || o.tunName != "flagtun" {
		t.Fatalf("WEFTD_IP_MASQ=true, WEFTD_TUN_NAME with --tun-name: %+v, %v", o, err)
	}
}

// Issue 24 item 8: a bad flag value printed the flag package's "parse
// error" and the whole usage; now one line says what the flag wants.
func TestBadFlagValueSaysWhatItWants(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--subnet-lease-ttl", "banana"}, `weftd: --subnet-lease-ttl "banana": want a duration such as 30s, 5m or 24h`},
		{[]string{"--queues", "many"}, `weftd: --queues "many": want an integer`},
		{[]string{"--ip-masq=yes please"}, `weftd: --ip-masq "yes please": want true or false`},
		{[]string{"--public-ip", "192.0.2.1", "--no-such-flag"}, "weftd: flag provided but not defined: -no-such-flag"},
	} {
		var stderr strings.Builder
		if code := run(tc.args, &stderr); code != exitConfig || strings.TrimSpace(stderr.String()) != tc.want {
			t.Errorf("%q: exit %d, stderr:\n%s\nwant exit 78 and only: %s", tc.args, code, stderr.String(), tc.want)
		}
	}
}

func TestFlagsAQM(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil || o.aqm.Target != 0 {
		t.Fatalf("default AQM %+v, %v: want off", o.aqm, err)
	}
	o, err = parseFlags([]string{"--aqm-target", "500us"}, io.Discard)
	if err != nil || o.aqm.Target != 500*time.Microsecond || o.aqm.Interval != 5*time.Millisecond {
		t.Fatalf("--aqm-target 500us: %+v, %v; want 500us / 5ms", o.aqm, err)
	}
	for _, args := range [][]string{
		{"--aqm-target", "10us"},
		{"--aqm-target", "10ms", "--aqm-interval", "5ms"},
		{"--aqm-target", "1ms", "--aqm-interval", "1m"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil || !strings.Contains(err.Error(), "--aqm-target") {
			t.Errorf("%v: error %v, want one naming --aqm-target", args, err)
		}
	}
}
