//go:build !unit

package main

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseIperfConnectedAndMSS(t *testing.T) {
	// Recorded from iperf 3.12 between two namespaces joined by a veth
	// (MTU 1500): iperf3 -c 2001:db8::2 -B 2001:db8::1 -J -t 1.
	res, err := parseIperf(readTestdata(t, "iperf3-tcp6.json"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Local != netip.MustParseAddr("2001:db8::1") || res.Remote != netip.MustParseAddr("2001:db8::2") {
		t.Errorf("IPv6 run connected %v -> %v", res.Local, res.Remote)
	}
	// 1500 - 40 (IPv6) - 20 (TCP) - 12 (timestamps).
	if res.MSS != 1428 || res.BitsPerSecond <= 0 {
		t.Errorf("IPv6 run: MSS %d, rate %v", res.MSS, res.BitsPerSecond)
	}
	if err := checkIPv6Run(res, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), 1500); err != nil {
		t.Errorf("the recorded IPv6 run does not pass the check: %v", err)
	}
	res, err = parseIperf(readTestdata(t, "iperf3-tcp.json"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Local != netip.MustParseAddr("192.0.2.1") || res.Remote != netip.MustParseAddr("192.0.2.2") || res.MSS != 1448 {
		t.Errorf("IPv4 run: %v -> %v, MSS %d", res.Local, res.Remote, res.MSS)
	}
	// An IPv4 run on iperf3's dual server socket may print mapped
	// addresses: the family is what went on the wire.
	doc := `{"start":{"connected":[{"local_host":"::ffff:10.0.0.1","remote_host":"::ffff:10.0.0.2"}],"tcp_mss_default":1448},
		"end":{"sum_received":{"seconds":1,"bytes":1,"bits_per_second":8}}}`
	if res, err := parseIperf([]byte(doc)); err != nil || !res.Local.Is4() || !res.Remote.Is4() {
		t.Errorf("mapped addresses: %v -> %v, %v", res.Local, res.Remote, err)
	}
}

func TestCheckIPv6Run(t *testing.T) {
	a, b := netip.MustParseAddr("fd10:244:0:1::"), netip.MustParseAddr("fd10:244:0:2::")
	ok := iperfResult{Local: a, Remote: b, MSS: 1378 - 12} // weft0 / VXLAN MTU 1450 with timestamps
	if err := checkIPv6Run(ok, a, b, 1450); err != nil {
		t.Errorf("good run: %v", err)
	}
	if err := checkIPv6Run(iperfResult{Local: a, Remote: b, MSS: 1390}, a, b, 1450); err != nil {
		t.Errorf("MSS exactly MTU - 60: %v", err)
	}
	v4a, v4b := netip.MustParseAddr("10.244.1.0"), netip.MustParseAddr("10.244.2.0")
	for name, c := range map[string]struct {
		res  iperfResult
		a, b netip.Addr
		mtu  int
		want string
	}{
		"an IPv4 run":           {iperfResult{Local: v4a, Remote: v4b, MSS: 1398}, v4a, v4b, 1450, "not IPv6"},
		"other endpoints":       {iperfResult{Local: a, Remote: netip.MustParseAddr("fd10:244:0:3::"), MSS: 1366}, a, b, 1450, "connected"},
		"no connection listed":  {iperfResult{MSS: 1366}, a, b, 1450, "connected"},
		"MSS of IPv4 (MTU-40)":  {iperfResult{Local: a, Remote: b, MSS: 1398}, a, b, 1450, "exceeds"},
		"MSS clamped far below": {iperfResult{Local: a, Remote: b, MSS: 1200}, a, b, 1450, "below"},
		"no MSS reported":       {iperfResult{Local: a, Remote: b}, a, b, 1450, "no MSS"},
		"MTU below 1280":        {iperfResult{Local: a, Remote: b, MSS: 1100}, a, b, 1200, "minimum"},
	} {
		err := checkIPv6Run(c.res, c.a, c.b, c.mtu)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one about %q", name, err, c.want)
		}
	}
}

func TestParseRouteGet(t *testing.T) {
	// Recorded from iproute2 6.1: on the link, via a gateway, with an mtu.
	rt, err := parseRouteGet([]byte(`[{"dst":"2001:db8::2","from":"2001:db8::1","dev":"eth0","protocol":"kernel","prefsrc":"2001:db8::1","metric":256,"flags":[],"pref":"medium"}]`))
	if err != nil || rt.Dev != "eth0" || rt.Gateway.IsValid() || rt.MTU != 0 {
		t.Errorf("on-link route = %+v, %v", rt, err)
	}
	rt, err = parseRouteGet([]byte(`[{"dst":"fd10:244:0:2::","from":"fd10:244:0:1::","gateway":"2001:db8::2","dev":"eth0","protocol":"static","prefsrc":"fd10:244:0:1::","metric":1024,"flags":[],"pref":"medium"}]`))
	if err != nil || rt.Dev != "eth0" || rt.Gateway != netip.MustParseAddr("2001:db8::2") {
		t.Errorf("direct route = %+v, %v", rt, err)
	}
	rt, err = parseRouteGet([]byte(`[{"dst":"fd02::5","from":"::","dev":"b6d","prefsrc":"fd01::1","metric":1024,"flags":[],"metrics":[{"mtu":1300}],"pref":"medium"}]`))
	if err != nil || rt.MTU != 1300 {
		t.Errorf("route with an MTU = %+v, %v", rt, err)
	}
	for _, bad := range []string{"", "[]", `[{"dst":"x"}]`, `[{"dev":"a"},{"dev":"b"}]`, `[{"dev":"a","gateway":"nope"}]`, "RTNETLINK answers: Network is unreachable"} {
		if _, err := parseRouteGet([]byte(bad)); err == nil {
			t.Errorf("parseRouteGet(%q): no error", bad)
		}
	}
	if mtu, err := parseLinkMTU([]byte(`[{"ifindex":2,"ifname":"weft0","mtu":1472}]`)); err != nil || mtu != 1472 {
		t.Errorf("parseLinkMTU = %d, %v", mtu, err)
	}
	for _, bad := range []string{"", "[]", `[{"ifname":"x"}]`, `[{"mtu":1500},{"mtu":1500}]`} {
		if _, err := parseLinkMTU([]byte(bad)); err == nil {
			t.Errorf("parseLinkMTU(%q): no error", bad)
		}
	}
}

// flannel udp has no IPv6: its cell is not measured by design (the
// reason in the report), while a path with neither IPv6 endpoints nor a
// reason fails the workload, and a path whose IPv6 run failed fails the
// verdict: never an empty cell in silence.
func TestTCP6NotMeasuredByDesign(t *testing.T) {
	res := newResults([]string{pathRaw, pathFlannelUDP, "odd"})
	r := &runner{res: res}
	if err := r.runTCP6(context.Background(), &path{Name: pathFlannelUDP, No6: flannelUDPNo6}); err != nil {
		t.Fatalf("runTCP6 on flannel udp: %v", err)
	}
	if why := res.NotMeasured[pathFlannelUDP+"/"+mTCP6]; why != flannelUDPNo6 {
		t.Errorf("reason %q", why)
	}
	if err := r.runTCP6(context.Background(), &path{Name: "odd"}); err == nil || !strings.Contains(err.Error(), "no IPv6 endpoints") {
		t.Errorf("a path without IPv6 endpoints or a reason: %v", err)
	}
	if _, ok := res.NotMeasured["odd/"+mTCP6]; ok {
		t.Errorf("the path without a reason was recorded as not measured by design")
	}
	res.add(pathRaw, mTCP6, 9.5)
	rep := &report{Results: res, Only: map[string]bool{"tcp6-1": true}}
	err := rep.verdict()
	if err == nil || !strings.Contains(err.Error(), "odd/"+mTCP6) || strings.Contains(err.Error(), pathFlannelUDP) || strings.Contains(err.Error(), pathRaw+"/") {
		t.Errorf("verdict: %v, want only odd/%s missing", err, mTCP6)
	}
	md := rep.markdown("x.png")
	if !strings.Contains(md, "flannel-udp/"+mTCP6+": "+flannelUDPNo6) {
		t.Errorf("report does not say why flannel udp has no IPv6 row")
	}
}

// The IPv6 row is in the table, after the IPv4 TCP rows, with the ratio
// columns every row has; tcp6-1 is in the rotation right after tcp-1.
func TestTCP6Row(t *testing.T) {
	r := newResults([]string{pathRaw, pathVXLAN, pathWeft})
	for p, v := range map[string]float64{pathRaw: 12, pathVXLAN: 8, pathWeft: 4} {
		r.add(p, mTCP6, v)
	}
	table := markdownTable(r)
	if want := "| TCP over IPv6, 1 stream (Gbit/s) | 12.0 | 8.00 | 4.00 | 0.50× | 0.33× |"; !strings.Contains(table, want) {
		t.Errorf("table lacks %q:\n%s", want, table)
	}
	i := slices.IndexFunc(allMetrics, func(m metric) bool { return m.Key == mTCP6 })
	if i < 0 || allMetrics[i-1].Key != mTCP4 || allMetrics[i].WeftOnly || !allMetrics[i].HigherBetter {
		t.Errorf("metric %d: %+v", i, allMetrics)
	}
	if workloadOf(mTCP6) != "tcp6-1" {
		t.Errorf("workloadOf(%s) = %q", mTCP6, workloadOf(mTCP6))
	}
	var names []string
	for _, w := range workloads {
		names = append(names, w.name)
	}
	if j := slices.Index(names, "tcp6-1"); j < 1 || names[j-1] != "tcp-1" {
		t.Errorf("workloads %v: want tcp6-1 right after tcp-1", names)
	}
}

func TestReportJSONIPv6Endpoints(t *testing.T) {
	rep := sampleReport()
	rep.Paths[0].A6, rep.Paths[0].B6 = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	rep.Paths[1].No6 = "no IPv6 here"
	data, err := rep.json()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"a6": "2001:db8::1"`, `"b6": "2001:db8::2"`, `"no6": "no IPv6 here"`, `"key": "tcp6_1_gbps"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("results.json lacks %s", want)
		}
	}
	if strings.Count(string(data), `"a6"`) != 1 {
		t.Errorf("a path without IPv6 endpoints has an a6 field")
	}
}
