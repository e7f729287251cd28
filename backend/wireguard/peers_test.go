package wireguard

import (
	"bytes"
	"encoding/hex"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/weftnet/weft/backend/wireguard/keyfile"
	"github.com/weftnet/weft/subnet"
)

func testKey(b byte) keyfile.Key {
	var k keyfile.Key
	for i := range k {
		k[i] = b
	}
	return k
}

func wgLease(sub, ip string, port int, key keyfile.Key) subnet.Lease {
	return subnet.Lease{Subnet: netip.MustParsePrefix(sub),
		Attrs: subnet.NewWireGuardLeaseAttrs(netip.MustParseAddr(ip), port, key)}
}

func hexKey(k keyfile.Key) string { return hex.EncodeToString(k[:]) }

func TestPeerSetSnapshotAndEvents(t *testing.T) {
	var logs bytes.Buffer
	psk := testKey(9)
	s := newPeerSet(testKey(1), 25, psk, slog.New(slog.NewTextHandler(&logs, nil)))
	a, b := testKey(2), testKey(3)
	conf := s.apply([]subnet.Lease{
		wgLease("10.244.2.0/24", "192.0.2.2", 51820, a),
		wgLease("10.244.3.0/24", "192.0.2.3", 51000, b),
	}, nil)
	want := "public_key=" + hexKey(a) + "\nendpoint=192.0.2.2:51820\npreshared_key=" + hexKey(psk) +
		"\npersistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.244.2.0/24\n" +
		"public_key=" + hexKey(b) + "\nendpoint=192.0.2.3:51000\npreshared_key=" + hexKey(psk) +
		"\npersistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.244.3.0/24\n"
	if conf != want {
		t.Fatalf("snapshot conf:\n%s\nwant:\n%s", conf, want)
	}
	// The same snapshot again (a re-list) changes nothing: sessions stay.
	if conf := s.apply([]subnet.Lease{wgLease("10.244.2.0/24", "192.0.2.2", 51820, a), wgLease("10.244.3.0/24", "192.0.2.3", 51000, b)}, nil); conf != "" {
		t.Errorf("unchanged re-list gave %q", conf)
	}
	// A lease that goes is removed at once.
	conf = s.apply(nil, []subnet.Event{{Type: subnet.EventRemoved, Lease: subnet.Lease{Subnet: netip.MustParsePrefix("10.244.3.0/24")}}})
	if conf != "public_key="+hexKey(b)+"\nremove=true\n" {
		t.Errorf("removal conf %q", conf)
	}
	// A new key for a subnet (rotation): old peer removed, new one added.
	c := testKey(4)
	conf = s.apply(nil, []subnet.Event{{Type: subnet.EventAdded, Lease: wgLease("10.244.2.0/24", "192.0.2.2", 51820, c)}})
	if !strings.HasPrefix(conf, "public_key="+hexKey(a)+"\nremove=true\npublic_key="+hexKey(c)+"\n") || !strings.Contains(conf, "allowed_ip=10.244.2.0/24\n") {
		t.Errorf("rotation conf %q", conf)
	}
	if l := s.list(); len(l) != 1 || l[0].Endpoint != "192.0.2.2:51820" || l[0].Mode != "wireguard" {
		t.Errorf("list %+v", l)
	}
	// A snapshot without the subnet removes it too.
	if conf := s.apply([]subnet.Lease{}, nil); conf != "public_key="+hexKey(c)+"\nremove=true\n" {
		t.Errorf("empty snapshot conf %q", conf)
	}
}

func TestPeerSetIgnoresBadLeasesOnce(t *testing.T) {
	var logs bytes.Buffer
	own := testKey(1)
	s := newPeerSet(own, 0, keyfile.Key{}, slog.New(slog.NewTextHandler(&logs, nil)))
	bad := subnet.Lease{Subnet: netip.MustParsePrefix("10.244.5.0/24"), Attrs: subnet.LeaseAttrs{PublicIP: "192.0.2.5", BackendType: "wireguard",
		BackendData: []byte(`{"PublicKey":"AAAA","Port":51820}`)}}
	udp := subnet.Lease{Subnet: netip.MustParsePrefix("10.244.6.0/24"), Attrs: subnet.NewLeaseAttrs(netip.MustParseAddr("192.0.2.6"), 8285)}
	mine := wgLease("10.244.7.0/24", "192.0.2.7", 51820, own)
	good := wgLease("10.244.8.0/24", "192.0.2.8", 51820, testKey(8))
	dup := wgLease("10.244.9.0/24", "192.0.2.9", 51820, testKey(8))
	snap := []subnet.Lease{bad, udp, mine, good, dup}
	for range 3 {
		conf := s.apply(snap, nil)
		if strings.Count(conf, "public_key=") > 1 {
			t.Fatalf("conf has more than the good peer: %q", conf)
		}
	}
	if l := s.list(); len(l) != 1 || l[0].Subnet.String() != "10.244.8.0/24" {
		t.Errorf("peers %+v, want only 10.244.8.0/24", l)
	}
	// Counted every time it is seen, logged once per lease.
	if s.badKeys != 9 {
		t.Errorf("badKeys = %d, want 9 (malformed, own, duplicate; three times)", s.badKeys)
	}
	for _, msg := range []string{"malformed PublicKey", "own PublicKey", "another backend", "already has"} {
		if n := strings.Count(logs.String(), msg); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", msg, n, logs.String())
		}
	}
	// No PSK and no keepalive: no preshared_key line, keepalive 0.
	s2 := newPeerSet(own, 0, keyfile.Key{}, slog.New(slog.NewTextHandler(&logs, nil)))
	if conf := s2.apply([]subnet.Lease{good}, nil); strings.Contains(conf, "preshared_key") || !strings.Contains(conf, "persistent_keepalive_interval=0\n") {
		t.Errorf("conf %q", conf)
	}
}

func TestParseStatsAndTotals(t *testing.T) {
	a, b := testKey(2), testKey(3)
	text := "private_key=" + hexKey(testKey(1)) + "\nlisten_port=51820\n" +
		"public_key=" + hexKey(a) + "\nendpoint=192.0.2.2:51820\nlast_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\ntx_bytes=100\nrx_bytes=200\n" +
		"public_key=" + hexKey(b) + "\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\nerrno=0\n"
	st := parseStats(text)
	if len(st) != 2 || st[0].Key != a || st[0].RxBytes != 200 || st[0].TxBytes != 100 || st[0].LastHandshake.Unix() != 1700000000 || !st[1].LastHandshake.IsZero() {
		t.Fatalf("parseStats = %+v", st)
	}
	var tot byteTotals
	sub := netip.MustParsePrefix("10.244.2.0/24")
	tot.observe(sub, a, 200, 100)
	if rx, tx := tot.observe(sub, a, 300, 150); rx != 300 || tx != 150 {
		t.Errorf("totals %d %d", rx, tx)
	}
	// The peer re-made with a new key: its counts restart, the totals do not.
	if rx, tx := tot.observe(sub, b, 10, 5); rx != 310 || tx != 155 {
		t.Errorf("after a new key: totals %d %d, want 310 155", rx, tx)
	}
}

// A stray etcd writer's lease copying a working peer's PublicKey at a
// lower subnet takes nothing from the peer: the key stays with the subnet
// it is installed for (in events and in a re-list), the copy is ignored
// and counted; once the peer's lease goes, the key is free for the other
// (at the next listing).
func TestPeerSetKeyCopyDoesNotTakeAWorkingPeer(t *testing.T) {
	var logs bytes.Buffer
	s := newPeerSet(testKey(1), 0, keyfile.Key{}, slog.New(slog.NewTextHandler(&logs, nil)))
	victim := testKey(5)
	peer := wgLease("10.244.50.0/24", "192.0.2.50", 51820, victim)
	stray := wgLease("10.244.1.0/24", "192.0.2.66", 51820, victim)
	if conf := s.apply([]subnet.Lease{peer}, nil); !strings.Contains(conf, "endpoint=192.0.2.50:51820\n") {
		t.Fatalf("snapshot conf %q", conf)
	}
	if conf := s.apply(nil, []subnet.Event{{Type: subnet.EventAdded, Lease: stray}}); conf != "" {
		t.Errorf("the copy's event changed the device: %q", conf)
	}
	if conf := s.apply([]subnet.Lease{stray, peer}, nil); conf != "" {
		t.Errorf("a re-list with the copy changed the device: %q", conf)
	}
	if l := s.list(); len(l) != 1 || l[0].Subnet.String() != "10.244.50.0/24" || l[0].Endpoint != "192.0.2.50:51820" {
		t.Errorf("peers %+v, want only 10.244.50.0/24 at 192.0.2.50", l)
	}
	if s.badKeys != 2 {
		t.Errorf("badKeys = %d, want 2 (the copy, twice)", s.badKeys)
	}
	if conf := s.apply(nil, []subnet.Event{{Type: subnet.EventRemoved, Lease: peer}}); conf != "public_key="+hexKey(victim)+"\nremove=true\n" {
		t.Errorf("the peer's removal: %q", conf)
	}
	if conf := s.apply([]subnet.Lease{stray}, nil); !strings.Contains(conf, "endpoint=192.0.2.66:51820\n") || !strings.Contains(conf, "allowed_ip=10.244.1.0/24\n") {
		t.Errorf("a re-list after the peer's lease went: %q, want the key for 10.244.1.0/24", conf)
	}
}
