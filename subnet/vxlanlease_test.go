package subnet

import "testing"

// flanneld's vxlan lease is a lease (its node holds the subnet; the vxlan
// backend checks BackendData), and the lease keeper tells another VtepMAC
// from a respelled one.
func TestVXLANLeaseFromFlanneld(t *testing.T) {
	a, err := parseLeaseAttrs([]byte(`{"PublicIP":"192.0.2.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"9e:51:3c:7a:05:2b"}}`))
	if err != nil {
		t.Fatal(err)
	}
	spaced := a
	spaced.BackendData = []byte(`{ "VNI": 1, "VtepMAC": "9e:51:3c:7a:05:2b" }`)
	other := a
	other.BackendData = []byte(`{"VNI":1,"VtepMAC":"9e:51:3c:7a:05:2c"}`)
	if !a.sameEndpoint(spaced) || a.sameEndpoint(other) {
		t.Fatal("sameEndpoint: want equal for a respelling, different for another VtepMAC")
	}
	if _, err := parseLeaseAttrs([]byte(`{"PublicIP":"127.0.0.1","BackendType":"vxlan","BackendData":{}}`)); err == nil {
		t.Fatal("a vxlan lease on loopback accepted")
	}
	if _, err := parseLeaseAttrs([]byte(`{"PublicIP":"192.0.2.1","BackendType":"udp","BackendData":{}}`)); err == nil {
		t.Fatal("a udp lease without a port accepted")
	}
}
