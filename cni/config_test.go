package cni

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func TestParseConfigDefaults(t *testing.T) {
	conf, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"weft","type":"weft"}`))
	if err != nil {
		t.Fatal(err)
	}
	if conf.SubnetFile != "/run/weft/subnet.env" || conf.Bridge != "weftbr0" || !conf.IsDefaultGateway ||
		!conf.HairpinMode || conf.IPMasq != nil || conf.DataDir != "/var/lib/cni/networks/weft" || conf.DaemonURL != "" || len(conf.Routes) != 0 {
		t.Fatalf("defaults: %+v", conf)
	}
}

func TestParseConfigOptions(t *testing.T) {
	conf, err := ParseConfig([]byte(`{"cniVersion":"0.4.0","name":"n","type":"weft","subnetFile":"/s.env","bridge":"br9",
		"isDefaultGateway":false,"hairpinMode":true,"ipMasq":true,"dataDir":"/d","daemonURL":"http://127.0.0.1:8286",
		"routes":[{"dst":"192.0.2.0/24"},{"dst":"198.51.100.7/24","gw":"10.244.7.1"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if conf.SubnetFile != "/s.env" || conf.Bridge != "br9" || conf.IsDefaultGateway || !conf.HairpinMode || conf.IPMasq == nil || !*conf.IPMasq ||
		conf.DataDir != "/d" || conf.DaemonURL != "http://127.0.0.1:8286" {
		t.Fatalf("options: %+v", conf)
	}
	if len(conf.Routes) != 2 || conf.Routes[0].GW != nil || conf.Routes[1].Dst.String() != "198.51.100.0/24" || conf.Routes[1].GW.String() != "10.244.7.1" {
		t.Fatalf("routes: %+v", conf.Routes)
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		conf string
		code uint
		msg  string
	}{
		{`{`, types.ErrDecodingFailure, "malformed"},
		{`[]`, types.ErrDecodingFailure, ""},
		{`{"name":"n"}`, types.ErrIncompatibleCNIVersion, "cniVersion"},
		{`{"cniVersion":"0.2.0","name":"n"}`, types.ErrIncompatibleCNIVersion, "cniVersion"},
		{`{"cniVersion":"1.0.0","name":"n","delegate":{"hairpinMode":true}}`, types.ErrInvalidNetworkConfig, `unknown config keys "delegate"`},
		{`{"cniVersion":"1.0.0","name":"n","SubnetFile":"/x","zzz":1}`, types.ErrInvalidNetworkConfig, `"SubnetFile" (did you mean "subnetFile"?), "zzz"`},
		{`{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"ips":"10.244.7.9"}}`, types.ErrInvalidNetworkConfig, `"runtimeConfig.ips"`},
		{`{"cniVersion":"1.0.0","name":"n","args":{"cni":{"mac":7}}}`, types.ErrInvalidNetworkConfig, `"args.cni.mac"`},
		{`{"cniVersion":"1.1.0"}`, types.ErrInvalidNetworkConfig, `"name"`},
		{`{"cniVersion":"1.1.0","name":"a/b"}`, types.ErrInvalidNetworkConfig, `"name"`},
		{`{"cniVersion":"1.1.0","name":"n","bridge":""}`, types.ErrInvalidNetworkConfig, `"bridge"`},
		{`{"cniVersion":"1.1.0","name":"n","bridge":"a b"}`, types.ErrInvalidNetworkConfig, `"bridge"`},
		{`{"cniVersion":"1.1.0","name":"n","bridge":7}`, types.ErrInvalidNetworkConfig, `"bridge"`},
		{`{"cniVersion":"1.1.0","name":"n","routes":{}}`, types.ErrInvalidNetworkConfig, `"routes"`},
		{`{"cniVersion":"1.1.0","name":"n","routes":[{"dst":"2001:db8::/64","gw":"10.0.0.1"}]}`, types.ErrInvalidNetworkConfig, `"routes[0]"`},
		{`{"cniVersion":"1.1.0","name":"n","daemonURL":"127.0.0.1:8286"}`, types.ErrInvalidNetworkConfig, `"daemonURL"`},
		{`{"cniVersion":"1.1.0","name":"n","prevResult":{"cniVersion":"1.1.0","ips":[{"address":"x"}]}}`, types.ErrInvalidNetworkConfig, `"prevResult"`},
	}
	for _, tc := range cases {
		_, err := ParseConfig([]byte(tc.conf))
		var cniErr *types.Error
		if !errors.As(err, &cniErr) {
			t.Fatalf("%s: error %v is not a *types.Error", tc.conf, err)
		}
		if cniErr.Code != tc.code || !strings.Contains(cniErr.Msg, tc.msg) {
			t.Fatalf("%s: got code %d %q, want code %d containing %q", tc.conf, cniErr.Code, cniErr.Msg, tc.code, tc.msg)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		`{"cniVersion":"1.1.0","name":"weft","type":"weft"}`,
		`{"cniVersion":"1.0.0","name":"n","routes":[{"dst":"192.0.2.0/24","gw":"10.0.0.1"}],"ipMasq":true}`,
		`{"cniVersion":"1.1.0","name":"n","prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.1.1.2/24","interface":0}]}}`,
		`{"cniVersion":"0.4.0","name":"n","prevResult":{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.1.2/24"}]}}`,
		`{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],"dns":{"nameservers":["1.1.1.1"]}}`,
		`{"name":`, `null`, `{"cniVersion":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		conf, err := ParseConfig(data)
		if err != nil {
			var cniErr *types.Error
			if !errors.As(err, &cniErr) {
				t.Fatalf("error %v is not a CNI error", err)
			}
			return
		}
		if conf.Name == "" || conf.Bridge == "" || conf.DataDir == "" || conf.SubnetFile == "" {
			t.Fatalf("accepted config with empty required values: %+v", conf)
		}
	})
}

func TestParseConfigIdentityOptions(t *testing.T) {
	conf, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"weft","type":"weft"}`))
	if err != nil {
		t.Fatal(err)
	}
	if conf.DaemonSocket != "/run/weft/weftd.sock" || conf.DefaultNamespace != "default" || conf.Labels != nil {
		t.Fatalf("defaults: %+v", conf)
	}
	conf, err = ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"weft","type":"weft","daemonSocket":"","defaultNamespace":"team-a",
		"args":{"cni":{"labels":[{"key":"app","value":"web"}],"ips":["10.244.1.9"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if conf.DaemonSocket != "" || conf.DefaultNamespace != "team-a" || len(conf.Labels) != 1 || conf.Labels["app"] != "web" {
		t.Fatalf("options: %+v", conf)
	}
	for conf, field := range map[string]string{
		`{"cniVersion":"1.1.0","name":"n","daemonSocket":"rel.sock"}`:                                                   `"daemonSocket"`,
		`{"cniVersion":"1.1.0","name":"n","defaultNamespace":"Default"}`:                                                `"defaultNamespace"`,
		`{"cniVersion":"1.1.0","name":"n","args":{"cni":{"labels":[{"value":"v"}]}}}`:                                   `"args.cni.labels"`,
		`{"cniVersion":"1.1.0","name":"n","args":{"cni":{"labels":[{"key":"k"}]}}}`:                                     `"args.cni.labels"`,
		`{"cniVersion":"1.1.0","name":"n","args":{"cni":{"labels":[{"key":"k","value":"a"},{"key":"k","value":"b"}]}}}`: `"args.cni.labels"`,
		`{"cniVersion":"1.1.0","name":"n","args":{"cni":{"labels":{"k":"v"}}}}`:                                         `labels`,
	} {
		_, err := ParseConfig([]byte(conf))
		var cniErr *types.Error
		if !errors.As(err, &cniErr) || cniErr.Code != types.ErrInvalidNetworkConfig || !strings.Contains(cniErr.Msg, field) {
			t.Errorf("%s: err %v, want invalid config naming %s", conf, err, field)
		}
	}
}
