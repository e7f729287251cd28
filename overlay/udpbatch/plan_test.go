package udpbatch

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"
)

var (
	epA = netip.MustParseAddrPort("192.0.2.1:8285")
	epB = netip.MustParseAddrPort("192.0.2.2:8285")
)

func sized(lens ...int) [][]byte {
	out := make([][]byte, len(lens))
	for i, n := range lens {
		out[i] = make([]byte, n)
	}
	return out
}

func TestPlan(t *testing.T) {
	many := make([]int, MaxSegments+1)
	manyDst := make([]netip.AddrPort, MaxSegments+1)
	for i := range many {
		many[i], manyDst[i] = 100, epA
	}
	big := []int{1400, 1400}
	for i := 0; i < 45; i++ {
		big = append(big, 1400)
	}
	bigDst := make([]netip.AddrPort, len(big))
	for i := range bigDst {
		bigDst[i] = epA
	}
	for _, tc := range []struct {
		name string
		lens []int
		dsts []netip.AddrPort
		gso  bool
		want []Message
	}{
		{"empty", nil, nil, true, []Message{}},
		{"one", []int{100}, []netip.AddrPort{epA}, true, []Message{{0, 1, 100}}},
		{"same size same dst", []int{100, 100, 100}, []netip.AddrPort{epA, epA, epA}, true,
			[]Message{{0, 3, 100}}},
		{"no gso: one message each", []int{100, 100}, []netip.AddrPort{epA, epA}, false,
			[]Message{{0, 1, 100}, {1, 1, 100}}},
		{"shorter last segment ends the message", []int{100, 100, 60, 100}, []netip.AddrPort{epA, epA, epA, epA}, true,
			[]Message{{0, 3, 100}, {3, 1, 100}}},
		{"longer segment starts a new message", []int{100, 200}, []netip.AddrPort{epA, epA}, true,
			[]Message{{0, 1, 100}, {1, 1, 200}}},
		{"destination change", []int{100, 100, 100}, []netip.AddrPort{epA, epB, epB}, true,
			[]Message{{0, 1, 100}, {1, 2, 100}}},
		{"segment limit", many, manyDst, true, []Message{{0, MaxSegments, 100}, {MaxSegments, 1, 100}}},
		{"payload limit", big, bigDst, true, []Message{{0, MaxPayload / 1400, 1400}, {MaxPayload / 1400, len(big) - MaxPayload/1400, 1400}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := make([]Message, len(tc.lens))
			n := Plan(sized(tc.lens...), nil, tc.dsts, tc.gso, msgs)
			if got := msgs[:n]; !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Plan = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSplitGRO(t *testing.T) {
	type msg struct {
		data []byte
		seg  int
	}
	seq := func(k int, first byte) []byte {
		b := make([]byte, k)
		for i := range b {
			b[i] = first + byte(i)
		}
		return b
	}
	for _, tc := range []struct {
		name    string
		room    int
		msgs    []msg
		want    [][]byte
		wantErr bool
	}{
		{"no GRO", 8, []msg{{seq(5, 0), 0}}, [][]byte{seq(5, 0)}, false},
		{"segment equals length", 8, []msg{{seq(5, 0), 5}}, [][]byte{seq(5, 0)}, false},
		{"even split", 8, []msg{{seq(6, 0), 2}}, [][]byte{seq(2, 0), seq(2, 2), seq(2, 4)}, false},
		{"short last", 8, []msg{{seq(5, 0), 2}}, [][]byte{seq(2, 0), seq(2, 2), seq(1, 4)}, false},
		{"empty stays one datagram", 8, []msg{{nil, 0}, {seq(3, 9), 0}}, [][]byte{{}, seq(3, 9)}, false},
		{"two messages", 8, []msg{{seq(4, 0), 2}, {seq(3, 50), 1}},
			[][]byte{seq(2, 0), seq(2, 2), {50}, {51}, {52}}, false},
		{"overflow is an error", 3, []msg{{seq(8, 0), 2}}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bufs := make([][]byte, len(tc.msgs))
			lens, segs := make([]int, len(tc.msgs)), make([]int, len(tc.msgs))
			from := make([]netip.AddrPort, len(tc.msgs))
			for j, m := range tc.msgs {
				bufs[j] = make([]byte, 64)
				lens[j] = copy(bufs[j], m.data)
				segs[j], from[j] = m.seg, epB
			}
			out, srcs := make([][]byte, tc.room), make([]netip.AddrPort, tc.room)
			got, err := SplitGRO(bufs, lens, segs, from, len(tc.msgs), out, srcs)
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != len(tc.want) {
				t.Fatalf("got %d datagrams, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !bytes.Equal(out[i], w) || srcs[i] != epB {
					t.Fatalf("datagram %d = %v from %v, want %v from %v", i, out[i], srcs[i], w, epB)
				}
			}
		})
	}
}

func TestGROMessagesFit(t *testing.T) {
	for _, n := range []int{64, 128, 200, 512} {
		if m := GROMessages(n); m < 1 || m*MaxSegments > n {
			t.Fatalf("n=%d: %d messages may split into more than %d datagrams", n, m, n)
		}
	}
}

func TestPlanCountsTails(t *testing.T) {
	heads := sized(50, 50, 50, 50)
	tails := [][]byte{make([]byte, 950), make([]byte, 950), nil, make([]byte, 900)}
	dsts := []netip.AddrPort{epA, epA, epA, epA}
	msgs := make([]Message, 4)
	n := Plan(heads, tails, dsts, true, msgs)
	// 1000, 1000, then 50 (shorter: ends the message), then 950 alone.
	want := []Message{{0, 3, 1000}, {3, 1, 950}}
	if !reflect.DeepEqual(msgs[:n], want) {
		t.Fatalf("Plan = %v, want %v", msgs[:n], want)
	}
}
