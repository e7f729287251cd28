//go:build !unit

package cni_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestBadInputsGetCNIErrors(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", nil)
	ctr := newNetns(t, "wtc")
	good := string(h.confJSON(t, "1.1.0", nil))
	withOpt := func(key string, value any) []byte { return h.confJSON(t, "1.1.0", map[string]any{key: value}) }

	cases := []struct {
		name     string
		call     pluginCall
		wantCode uint
		wantMsg  string
	}{
		{"malformed JSON", pluginCall{stdin: []byte(`{"cniVersion": "1.1.0", "name": `)}, 6, "unmarshal"},
		{"missing name", pluginCall{stdin: []byte(`{"cniVersion":"1.1.0","type":"weft"}`)}, 7, "missing network name"},
		{"missing cniVersion", pluginCall{stdin: []byte(`{"name":"n","type":"weft"}`)}, 1, "incompatible CNI versions"},
		{"unsupported cniVersion", pluginCall{stdin: []byte(strings.Replace(good, `"1.1.0"`, `"0.2.0"`, 1))}, 1, "incompatible CNI versions"},
		{"flannel's delegate", pluginCall{stdin: withOpt("delegate", map[string]any{"hairpinMode": true})}, 7, `unknown config keys "delegate"`},
		{"misspelt option", pluginCall{stdin: withOpt("hairpinmode", true)}, 7, `did you mean "hairpinMode"`},
		{"static IP outside the subnet", pluginCall{args: "IP=10.244.8.5", stdin: []byte(good)}, 7, "not a usable address of this node's subnet 10.244.7.0/24"},
		{"static IP is the gateway", pluginCall{args: "IP=10.244.7.1", stdin: []byte(good)}, 7, "not a usable address"},
		{"static IP not an address", pluginCall{args: "IgnoreUnknown=1;IP=10.244.7.300", stdin: []byte(good)}, 7, `"CNI_ARGS IP"`},
		{"static IP with another prefix length (CNI_ARGS)", pluginCall{args: "IP=10.244.7.9/16", stdin: []byte(good)}, 7, `"CNI_ARGS IP": asks for 10.244.7.9/16 but this node's subnet is 10.244.7.0/24: give the address with /24`},
		{"static IP with another prefix length (runtimeConfig)", pluginCall{stdin: withOpt("runtimeConfig", map[string]any{"ips": []string{"10.244.7.9/25"}})}, 7, `"runtimeConfig": asks for 10.244.7.9/25`},
		{"static IP with another prefix length (args.cni)", pluginCall{stdin: withOpt("args", map[string]any{"cni": map[string]any{"ips": []string{"10.244.7.9/32"}}})}, 7, `"args.cni": asks for 10.244.7.9/32`},
		{"static IP bare and with another prefix length", pluginCall{args: "IP=10.244.7.9", stdin: withOpt("runtimeConfig", map[string]any{"ips": []string{"10.244.7.9/16"}})}, 7, "give the address with /24 (or bare)"},
		{"static IPv6 on an IPv4 network", pluginCall{stdin: withOpt("runtimeConfig", map[string]any{"ips": []string{"2001:db8::5/64"}})}, 7, "asks for IPv6 address 2001:db8::5 but this node's network has no IPv6"},
		{"two static IPv4 addresses", pluginCall{stdin: withOpt("runtimeConfig", map[string]any{"ips": []string{"10.244.7.5", "10.244.7.6"}})}, 7, "asks for two IPv4 addresses"},
		{"sources disagree", pluginCall{args: "IP=10.244.7.5", stdin: withOpt("args", map[string]any{"cni": map[string]any{"ips": []string{"10.244.7.6"}}})}, 7, "but args.cni asks for"},
		{"multicast MAC", pluginCall{args: "MAC=01:00:5e:00:00:01", stdin: []byte(good)}, 7, "multicast"},
		{"bad MAC", pluginCall{stdin: withOpt("runtimeConfig", map[string]any{"mac": "zz"})}, 7, `"runtimeConfig"`},
		{"CNI_ARGS not K=V", pluginCall{args: "IP", stdin: []byte(good)}, 7, `"CNI_ARGS"`},
		{"CNI_ARGS empty IP", pluginCall{args: "K8S_POD_NAME=p;IP=", stdin: []byte(good)}, 7, `"CNI_ARGS IP": empty`},
		{"CNI_ARGS empty MAC", pluginCall{args: "MAC=", stdin: []byte(good)}, 7, `"CNI_ARGS MAC": empty`},
		{"CNI_ARGS IP twice", pluginCall{args: "IP=10.244.7.5;IP=10.244.7.6", stdin: []byte(good)}, 7, `"CNI_ARGS": IP given twice ("10.244.7.5" and "10.244.7.6")`},
		{"CNI_ARGS MAC twice", pluginCall{args: "MAC=02:00:00:00:00:01;MAC=02:00:00:00:00:02", stdin: []byte(good)}, 7, `"CNI_ARGS": MAC given twice`},
		{"future cniVersion", pluginCall{stdin: []byte(strings.Replace(good, `"1.1.0"`, `"9.0.0"`, 1))}, 1, "incompatible CNI versions"},
		{"missing CNI_CONTAINERID", pluginCall{containerID: "-", stdin: []byte(good)}, 4, "CNI_CONTAINERID"},
		{"missing subnet file", pluginCall{stdin: withOpt("subnetFile", h.dir+"/absent.env")}, 11, "weftd is not ready"},
		{"bad CNI_NETNS", pluginCall{netns: "/var/run/netns/wt-absent", stdin: []byte(good)}, 8, "CNI_NETNS"},
		{"bridge name too long", pluginCall{stdin: withOpt("bridge", "a-very-long-bridge-name")}, 7, `"bridge"`},
		{"hairpinMode not a bool", pluginCall{stdin: withOpt("hairpinMode", "yes")}, 7, `"hairpinMode"`},
		{"isDefaultGateway not a bool", pluginCall{stdin: withOpt("isDefaultGateway", 1)}, 7, `"isDefaultGateway"`},
		{"ipMasq not a bool", pluginCall{stdin: withOpt("ipMasq", "true")}, 7, `"ipMasq"`},
		{"route without dst", pluginCall{stdin: withOpt("routes", []map[string]string{{"gw": "10.244.7.1"}})}, 7, `"routes[0]"`},
		{"route with bad gw", pluginCall{stdin: withOpt("routes", []map[string]string{{"dst": "192.0.2.0/24", "gw": "x"}})}, 7, `"routes[0]"`},
		{"relative dataDir", pluginCall{stdin: withOpt("dataDir", "ipam")}, 7, `"dataDir"`},
		{"empty subnetFile", pluginCall{stdin: withOpt("subnetFile", "")}, 7, `"subnetFile"`},
		{"daemonURL not http", pluginCall{stdin: withOpt("daemonURL", "ftp://x")}, 7, `"daemonURL"`},
		{"ipam section", pluginCall{stdin: withOpt("ipam", map[string]string{"type": "host-local"})}, 7, `"ipam"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.call
			c.command = "ADD"
			if c.containerID == "" {
				c.containerID = "ctr-bad-input"
			} else if c.containerID == "-" {
				c.containerID = ""
			}
			if c.netns == "" {
				c.netns = ctr.path()
			}
			c.ifname = "eth0"
			c.inNetns = &h.ns
			out, perr := invoke(t, c)
			if perr == nil {
				t.Fatalf("ADD succeeded: %s", out)
			}
			if perr.Code != tc.wantCode || !strings.Contains(perr.Msg+" "+perr.Details, tc.wantMsg) {
				t.Fatalf("got code %d msg %q details %q; want code %d and %q", perr.Code, perr.Msg, perr.Details, tc.wantCode, tc.wantMsg)
			}
		})
	}
	if got := h.allocations(t); len(got) != 0 {
		t.Fatalf("failed ADDs allocated addresses: %v", got)
	}
	if out, err := ctr.execErr("ip", "link", "show", "eth0"); err == nil {
		t.Fatalf("failed ADDs left eth0:\n%s", out)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	out, perr := invoke(t, pluginCall{command: "VERSION", stdin: []byte(`{"cniVersion":"1.1.0"}`)})
	if perr != nil {
		t.Fatalf("VERSION: %+v", perr)
	}
	for _, v := range []string{`"0.3.0"`, `"0.3.1"`, `"0.4.0"`, `"1.0.0"`, `"1.1.0"`} {
		if !strings.Contains(string(out), v) {
			t.Fatalf("VERSION output %s lacks %s", out, v)
		}
	}
}

// STATUS touches no interface: it runs in the test's own namespace so that
// it can reach an httptest server on loopback.
func TestStatus(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", nil)
	status := func(opts map[string]any) *pluginError {
		_, perr := invoke(t, pluginCall{command: "STATUS", stdin: h.confJSON(t, "1.1.0", opts)})
		return perr
	}
	if perr := status(nil); perr != nil {
		t.Fatalf("STATUS with a subnet file: %+v", perr)
	}

	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
		}
	}))
	defer ready.Close()
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no lease yet", http.StatusServiceUnavailable)
	}))
	defer notReady.Close()
	if perr := status(map[string]any{"daemonURL": ready.URL}); perr != nil {
		t.Fatalf("STATUS with a ready daemon: %+v", perr)
	}
	if perr := status(map[string]any{"daemonURL": notReady.URL}); perr == nil || perr.Code != 50 || !strings.Contains(perr.Details, "503") {
		t.Fatalf("STATUS with a daemon answering 503: %+v", perr)
	}

	if err := os.WriteFile(h.subnetFile, []byte("WEFT_NETWORK=10.244.0.0/16\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if perr := status(nil); perr == nil || perr.Code != 50 || !strings.Contains(perr.Msg, "weftd is not ready") {
		t.Fatalf("STATUS with an invalid subnet file: %+v", perr)
	}
	if err := os.Remove(h.subnetFile); err != nil {
		t.Fatal(err)
	}
	if perr := status(nil); perr == nil || perr.Code != 50 || !strings.Contains(perr.Msg, "weftd is not ready") {
		t.Fatalf("STATUS without a subnet file: %+v", perr)
	}
}
