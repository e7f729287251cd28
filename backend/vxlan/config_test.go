package vxlan

import (
	"strings"
	"testing"
)

// flannel's field names, matched case-insensitively as flannel's
// encoding/json matches them ("Directrouting" from many guides), with
// flannel's defaults; out-of-range values and unknown fields refused.
func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Config
	}{
		{`{"Type":"vxlan"}`, Config{VNI: 1, Port: 8472}},
		{``, Config{VNI: 1, Port: 8472}},
		{`{"Type":"vxlan","Directrouting":true}`, Config{VNI: 1, Port: 8472, DirectRouting: true}},
		{`{"type":"vxlan","DirectRouting":true,"vni":4096,"PORT":4789,"gbp":true,"Learning":true,"MTU":9000}`,
			Config{VNI: 4096, Port: 4789, GBP: true, Learning: true, DirectRouting: true, MTU: 9000}},
		{`{"Type":"vxlan","VNI":0,"Port":0}`, Config{VNI: 0, Port: 8472}},
	} {
		got, err := ParseConfig([]byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("ParseConfig(%s) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{`{"Type":"vxlan","VNI":16777216}`, "VNI 16777216 out of range"},
		{`{"Type":"vxlan","VNI":-1}`, "VNI -1 out of range"},
		{`{"Type":"vxlan","Port":65536}`, "Port 65536 out of range"},
		{`{"Type":"vxlan","Port":-5}`, "Port -5 out of range"},
		{`{"Type":"vxlan","MTU":600}`, "MTU 600 out of range"},
		{`{"Type":"vxlan","VNI":"1"}`, "Backend.VNI"},
		{`{"Type":"vxlan","Vni":1,"VNI":2}`, "same field"},
		{`{"Type":"vxlan","PSK":"x"}`, `unknown field "PSK"`},
		{`{"Type":"udp"}`, `not "vxlan"`},
		{`[1]`, "want a JSON object"},
		{`{"Type":"vxlan"} {}`, "unexpected data"},
	} {
		_, err := ParseConfig([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%s) error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
	c := Config{VNI: 7, Port: 8472}
	if c.DeviceName() != "flannel.7" || c.DeviceMTU(1500) != 1450 {
		t.Fatalf("%s %d", c.DeviceName(), c.DeviceMTU(1500))
	}
	c.MTU = 9000
	if c.DeviceMTU(1500) != 8950 {
		t.Fatalf("MTU override: %d", c.DeviceMTU(1500))
	}
}

// flanneld's BackendData round-trips; a malformed VtepMAC, a group or
// zero MAC, a huge value are refused.
func TestLeaseData(t *testing.T) {
	d, err := ParseLeaseData([]byte(`{"VNI":1,"VtepMAC":"9e:51:3c:7a:05:2b"}`))
	if err != nil || d.VNI != 1 || d.VtepMAC.String() != "9e:51:3c:7a:05:2b" {
		t.Fatalf("%+v %v", d, err)
	}
	if got := string(d.Marshal()); got != `{"VNI":1,"VtepMAC":"9e:51:3c:7a:05:2b"}` {
		t.Fatalf("Marshal = %s", got)
	}
	for _, bad := range []string{
		``, `{}`, `{"VNI":1}`, `{"VNI":1,"VtepMAC":"zz"}`, `{"VNI":1,"VtepMAC":"01:00:5e:00:00:01"}`,
		`{"VNI":1,"VtepMAC":"ff:ff:ff:ff:ff:ff"}`, `{"VNI":1,"VtepMAC":"00:00:00:00:00:00"}`,
		`{"VNI":1,"VtepMAC":"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"}`,
		`{"VNI":99999999,"VtepMAC":"9e:51:3c:7a:05:2b"}`, `"x"`,
		`{"VNI":1,"VtepMAC":"9e:51:3c:7a:05:2b","pad":"` + strings.Repeat("x", 600) + `"}`,
	} {
		if _, err := ParseLeaseData([]byte(bad)); err == nil {
			t.Errorf("ParseLeaseData(%.60s) accepted", bad)
		}
	}
}
