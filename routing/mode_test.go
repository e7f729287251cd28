package routing

import (
	"net/netip"
	"slices"
	"testing"
)

func TestChoose(t *testing.T) {
	onLink := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("203.0.113.8/31"),
		netip.MustParsePrefix("2001:db8:1::/64"), netip.MustParsePrefix("2001:db8:2::/127")}
	udp := Policy{}
	direct := Policy{DirectRouting: true}
	hostGW := Policy{HostGW: true}
	tests := []struct {
		name   string
		policy Policy
		peer   string
		want   Mode
	}{
		{"plain udp, peer on the L2", udp, "192.0.2.2", ModeUDP},
		{"plain udp, peer off the L2", udp, "198.51.100.3", ModeUDP},
		{"DirectRouting, peer on the L2", direct, "192.0.2.2", ModeDirect},
		{"DirectRouting, peer off the L2", direct, "198.51.100.3", ModeUDP},
		{"DirectRouting, network address is no host", direct, "192.0.2.0", ModeUDP},
		{"DirectRouting, broadcast address is no host", direct, "192.0.2.255", ModeUDP},
		{"DirectRouting, point-to-point /31", direct, "203.0.113.9", ModeDirect},
		{"host-gw, peer on the L2", hostGW, "192.0.2.200", ModeDirect},
		{"host-gw, peer off the L2", hostGW, "198.51.100.3", ModeUnreachable},
		{"host-gw, IPv4-mapped IPv6 on the L2", hostGW, "::ffff:192.0.2.7", ModeDirect},
		{"host-gw, IPv6 peer off the L2", hostGW, "2001:db8::1", ModeUnreachable},
		{"host-gw, IPv6 peer on the L2", hostGW, "2001:db8:1::5", ModeDirect},
		{"DirectRouting, IPv6 peer on the L2", direct, "2001:db8:1::5", ModeDirect},
		{"DirectRouting, IPv6 subnet-router anycast is no host", direct, "2001:db8:1::", ModeUDP},
		{"DirectRouting, IPv6 /127", direct, "2001:db8:2::", ModeDirect},
		{"DirectRouting, IPv6 peer off the L2", direct, "2001:db8:3::1", ModeUDP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Choose(tt.policy, netip.MustParseAddr(tt.peer), onLink); got != tt.want {
				t.Errorf("Choose(%+v, %s) = %v, want %v", tt.policy, tt.peer, got, tt.want)
			}
		})
	}
	if got := Choose(direct, netip.MustParseAddr("192.0.2.2"), nil); got != ModeUDP {
		t.Errorf("no connected prefixes: got %v, want udp", got)
	}
}

func TestModeStrings(t *testing.T) {
	var names []string
	for _, m := range Modes {
		names = append(names, m.String())
	}
	if !slices.Equal(names, []string{"udp", "direct", "unreachable"}) {
		t.Errorf("mode names %v", names)
	}
}

func withSource(r Route, src string) Route {
	r.Source = netip.MustParseAddr(src)
	return r
}

func TestRouteString(t *testing.T) {
	r := Route{Subnet: netip.MustParsePrefix("10.244.1.0/24"), Gateway: netip.MustParseAddr("192.0.2.1")}
	if got := r.String(); got != "10.244.1.0/24 via 192.0.2.1" {
		t.Errorf("String() = %q", got)
	}
	if got := withSource(r, "10.244.7.0").String(); got != "10.244.1.0/24 via 192.0.2.1 src 10.244.7.0" {
		t.Errorf("String() with a source = %q", got)
	}
}

func TestPlan(t *testing.T) {
	r := func(subnet, gw string) Route {
		return Route{Subnet: netip.MustParsePrefix(subnet), Gateway: netip.MustParseAddr(gw)}
	}
	p := netip.MustParsePrefix
	tests := []struct {
		name         string
		want, owned  []Route
		foreign      []netip.Prefix
		del          []netip.Prefix
		add, blocked []Route
	}{
		{name: "empty"},
		{name: "fresh start adds all",
			want: []Route{r("10.244.1.0/24", "192.0.2.1"), r("10.244.2.0/24", "192.0.2.2")},
			add:  []Route{r("10.244.1.0/24", "192.0.2.1"), r("10.244.2.0/24", "192.0.2.2")}},
		{name: "in place: nothing to do",
			want:  []Route{r("10.244.1.0/24", "192.0.2.1")},
			owned: []Route{r("10.244.1.0/24", "192.0.2.1")}},
		{name: "stale routes of an earlier run go",
			want:  []Route{r("10.244.1.0/24", "192.0.2.1")},
			owned: []Route{r("10.244.1.0/24", "192.0.2.1"), r("10.244.9.0/24", "192.0.2.9"), r("10.244.3.0/24", "192.0.2.3")},
			del:   []netip.Prefix{p("10.244.3.0/24"), p("10.244.9.0/24")}},
		{name: "gateway changed: replaced",
			want:  []Route{r("10.244.1.0/24", "192.0.2.7")},
			owned: []Route{r("10.244.1.0/24", "192.0.2.1")},
			del:   []netip.Prefix{p("10.244.1.0/24")},
			add:   []Route{r("10.244.1.0/24", "192.0.2.7")}},
		{name: "source changed (or missing, from an older weft): replaced",
			want:  []Route{withSource(r("10.244.1.0/24", "192.0.2.1"), "10.244.7.0")},
			owned: []Route{r("10.244.1.0/24", "192.0.2.1")},
			del:   []netip.Prefix{p("10.244.1.0/24")},
			add:   []Route{withSource(r("10.244.1.0/24", "192.0.2.1"), "10.244.7.0")}},
		{name: "same source: nothing to do",
			want:  []Route{withSource(r("10.244.1.0/24", "192.0.2.1"), "10.244.7.0")},
			owned: []Route{withSource(r("10.244.1.0/24", "192.0.2.1"), "10.244.7.0")}},
		{name: "someone else's route is never touched and blocks ours",
			want:    []Route{r("10.244.1.0/24", "192.0.2.1"), r("10.244.2.0/24", "192.0.2.2")},
			foreign: []netip.Prefix{p("10.244.2.0/24"), p("192.0.2.0/24"), p("10.244.0.0/16")},
			add:     []Route{r("10.244.1.0/24", "192.0.2.1")},
			blocked: []Route{r("10.244.2.0/24", "192.0.2.2")}},
		{name: "ours yields to someone else's with the same destination",
			want:    []Route{r("10.244.2.0/24", "192.0.2.2")},
			owned:   []Route{r("10.244.2.0/24", "192.0.2.2")},
			foreign: []netip.Prefix{p("10.244.2.0/24")},
			del:     []netip.Prefix{p("10.244.2.0/24")},
			blocked: []Route{r("10.244.2.0/24", "192.0.2.2")}},
		{name: "stop: everything of ours goes",
			owned: []Route{r("10.244.1.0/24", "192.0.2.1")},
			del:   []netip.Prefix{p("10.244.1.0/24")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			del, add, blocked := plan(tt.want, tt.owned, tt.foreign)
			if !slices.Equal(del, tt.del) || !slices.Equal(add, tt.add) || !slices.Equal(blocked, tt.blocked) {
				t.Errorf("plan = del %v add %v blocked %v; want del %v add %v blocked %v", del, add, blocked, tt.del, tt.add, tt.blocked)
			}
		})
	}
}
