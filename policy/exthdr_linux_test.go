//go:build !unit

package policy

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// tcpSyn6 is a TCP SYN (20 bytes and 8 of data, checksum set) from src:sport to dst:dport
// with sequence number seq.
func tcpSyn6(src, dst netip.Addr, sport, dport uint16, seq uint32) []byte {
	tcp := make([]byte, 28) // 8 bytes of data: a fragment's worth
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12] = 5 << 4
	tcp[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	var sum uint32
	s, d := src.As16(), dst.As16()
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	add(s[:])
	add(d[:])
	sum += uint32(len(tcp)) + unix.IPPROTO_TCP
	add(tcp)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(tcp[16:], ^uint16(sum))
	return tcp
}

// ip6Packet is an IPv6 header (hop limit 64) and payload, nh the first
// next header.
func ip6Packet(src, dst netip.Addr, nh byte, payload []byte) []byte {
	h := make([]byte, 40, 40+len(payload))
	h[0] = 6 << 4
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6] = nh
	h[7] = 64
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

// extHeaderVariants are the ways to carry a TCP segment (nh 6) that an
// attacker tries to hide its port with: plain, after a hop-by-hop and a
// destination options header (PadN), in two fragments whose first holds
// the whole TCP header, in two whose first holds the TCP header's first 8
// bytes, and in a first fragment holding a destination options header
// alone (the TCP header all in the second).
func extHeaderVariants(src, dst netip.Addr, tcp []byte, id uint32) map[string][][]byte {
	opts := func(next byte) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} } // PadN
	frag := func(next byte, offset8 uint16, more bool) []byte {
		f := make([]byte, 8)
		f[0] = next
		v := offset8 << 3
		if more {
			v |= 1
		}
		binary.BigEndian.PutUint16(f[2:], v)
		binary.BigEndian.PutUint32(f[4:], id)
		return f
	}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	return map[string][][]byte{
		"plain":                    {ip6Packet(src, dst, 6, tcp)},
		"hop-by-hop + dst options": {ip6Packet(src, dst, 0, cat(opts(60), opts(6), tcp))},
		"fragments (tcp header + 8 bytes of data)": {
			ip6Packet(src, dst, 44, cat(frag(6, 0, true), tcp[:24])),
			ip6Packet(src, dst, 44, cat(frag(6, 3, false), tcp[24:])),
		},
		"fragments (8 + 20 bytes)": {
			ip6Packet(src, dst, 44, cat(frag(6, 0, true), tcp[:8])),
			ip6Packet(src, dst, 44, cat(frag(6, 1, false), tcp[8:])),
		},
		"fragments, tcp header in the second": {
			ip6Packet(src, dst, 44, cat(frag(60, 0, true), opts(6))),
			ip6Packet(src, dst, 44, cat(frag(60, 1, false), tcp)),
		},
	}
}

var extHeaderNames = []string{"plain", "hop-by-hop + dst options", "fragments (tcp header + 8 bytes of data)", "fragments (8 + 20 bytes)", "fragments, tcp header in the second"}

// splitHeader are the variants whose first fragment lacks the whole TCP
// header: the kernel discards them (RFC 8200 4.5) before any policy, so
// only "never to port 81" is asserted of them.
var splitHeader = map[string]bool{"fragments (8 + 20 bytes)": true, "fragments, tcp header in the second": true}

// TestExtensionHeadersHideNoPort: x/a admits TCP 80 from r only. r
// crafts TCP SYNs to x/a with extension headers (hop-by-hop and
// destination options, a fragment header, the TCP header in a second
// fragment) to hide the port from the port rule: to port 80 each arrives
// (the crafting works), to port 81 none may.
func TestExtensionHeadersHideNoPort(t *testing.T) {
	nd := newNode(t)
	e := NewEnforcer(EnforcerOptions{NetNS: int(nd.nsFd.Fd()), Bridge: testBridge})
	defer e.Remove()
	nd.apply(t, e, np+"metadata: {name: d, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {pod: r}}, namespaceSelector: {}}]\n    ports: [{port: 80}]")
	src, dst := nd.ips6["r"], nd.ips6["a"]

	// x/a reads every TCP segment delivered to it.
	var pc net.PacketConn
	err := ns.WithNetNSPath(nd.ctrs["a"].Path(), func(ns.NetNS) error {
		var err error
		pc, err = net.ListenPacket("ip6:tcp", dst.String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got := make(chan uint32, 64)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n >= 20 && buf[13] == 0x02 {
				got <- binary.BigEndian.Uint32(buf[4:])
			}
		}
	}()

	type sent struct {
		variant string
		port    uint16
	}
	seqs := map[uint32]sent{}
	err = ns.WithNetNSPath(nd.ctrs["r"].Path(), func(ns.NetNS) error {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		to := &unix.SockaddrInet6{Addr: dst.As16()}
		seq := uint32(0x5eed0000)
		for _, port := range []uint16{80, 81} {
			for _, name := range extHeaderNames {
				seq++
				seqs[seq] = sent{name, port}
				for _, p := range extHeaderVariants(src, dst, tcpSyn6(src, dst, 40000+uint16(seq&0xfff), port, seq), seq)[name] {
					if err := unix.Sendto(fd, p, 0, to); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	arrived := map[sent]bool{}
	deadline := time.After(3 * time.Second)
wait:
	for {
		select {
		case s := <-got:
			if v, ok := seqs[s]; ok {
				arrived[v] = true
			}
		case <-deadline:
			break wait
		}
	}
	for _, s := range seqs {
		want := s.port == 80
		if splitHeader[s.variant] && want {
			t.Logf("r -> x/a tcp/80 as %q: arrived %v (the kernel may discard it)", s.variant, arrived[s])
			continue
		}
		if arrived[s] != want {
			t.Errorf("r -> x/a tcp/%d as %q: arrived %v, want %v", s.port, s.variant, arrived[s], want)
		}
	}
}
