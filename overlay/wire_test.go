package overlay

import "testing"

func TestHeaderRoundTrip(t *testing.T) {
	b := make([]byte, HeaderLen)
	putHeader(b)
	if got := checkHeader(b); got != notDropped {
		t.Fatalf("checkHeader(putHeader) = %v, want pass", got)
	}
	if b[0] != headerMagic || b[1] != headerVersion || b[2] != typeData || b[3] != 0 {
		t.Fatalf("header bytes % x", b)
	}
}

func TestCheckHeader(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want DropReason
	}{
		{"empty", nil, DropTooShort},
		{"three bytes", []byte{headerMagic, headerVersion, typeData}, DropTooShort},
		{"bare ipv4", []byte{0x45, 0, 0, 20}, DropBadMagic},
		{"version 2", []byte{headerMagic, 2, typeData, 0}, DropBadVersion},
		{"version 0", []byte{headerMagic, 0, typeData, 0}, DropBadVersion},
		{"type 0", []byte{headerMagic, headerVersion, 0, 0}, DropUnknownType},
		{"type 2", []byte{headerMagic, headerVersion, 2, 0}, DropUnknownType},
		{"flag bit", []byte{headerMagic, headerVersion, typeData, 0x80}, DropReservedBits},
		{"valid header only", []byte{headerMagic, headerVersion, typeData, 0}, notDropped},
		{"valid with payload", []byte{headerMagic, headerVersion, typeData, 0, 0x45}, notDropped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkHeader(tt.in); got != tt.want {
				t.Fatalf("checkHeader(% x) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestOverlayMTU(t *testing.T) {
	if got := OverlayMTU(1500); got != 1500-20-8-HeaderLen {
		t.Fatalf("OverlayMTU(1500) = %d", got)
	}
	if got := OverlayMTU(9000); got != 8968 {
		t.Fatalf("OverlayMTU(9000) = %d", got)
	}
}

func TestDropReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for r := range NumDropReasons {
		name := DropReason(r).String()
		if name == "" || name == "unknown" || seen[name] {
			t.Fatalf("reason %d has bad or duplicate name %q", r, name)
		}
		for _, c := range name {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				t.Fatalf("reason %d name %q is not snake_case", r, name)
			}
		}
		seen[name] = true
	}
	if DropUnknownPeer.String() != "unknown_peer" || DropSpoofedInnerSource.String() != "spoofed_inner_source" {
		t.Fatal("documented names changed")
	}
}

func TestBatchBuckets(t *testing.T) {
	b := BatchSizeBuckets()
	if len(b) != numBatchBuckets || b[0] != 1 || b[len(b)-1] != batchSize {
		t.Fatalf("buckets %v", b)
	}
	for n, want := range map[int]int{1: 0, 2: 1, 3: 2, 4: 2, 5: 3, 64: 6, 65: 7, 128: 7} {
		if got := batchBucket(n); got != want {
			t.Fatalf("batchBucket(%d) = %d, want %d", n, got, want)
		}
	}
}
