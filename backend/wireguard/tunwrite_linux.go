package wireguard

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/overlay/tundev"
)

// The receive side of the device: the packets it decrypted, written into the
// TUN. The library's own Write (with the TUN's offloads on) coalesces TCP
// segments into a GSO superpacket by growing the first segment's buffer
// (zeroed) and copying every other segment's payload into it, after
// verifying each segment's checksum. weft's TCP writer (overlay/tundev, the
// udp path's) writes the same superpacket from where the segments lie, with
// writev and an iovec per segment: no clearing, no copy.
//
// The segments' checksums are not verified on the way: the kernel takes a
// superpacket's checksum as its own (CHECKSUM_PARTIAL). What the device
// writes was authenticated by the peer's key (ChaCha20-Poly1305) after the
// peer read it from its own TUN, so the wire cannot have changed it; the
// kernel's WireGuard likewise marks decrypted packets CHECKSUM_UNNECESSARY.

// errNoVnetHeader: the TUN has no virtio-net headers (offloads off), so the
// library's Write is used as it is.
var errNoVnetHeader = errors.New("TUN without virtio-net headers (offloads off)")

// withTCPWriter returns dev with weft's TCP writer on its Write when the TUN
// was opened with IFF_VNET_HDR; otherwise dev itself, unchanged, and why.
func withTCPWriter(dev tun.Device) (tun.Device, error) {
	f := dev.File()
	if !tundev.HasVnetHeader(f) {
		return dev, errNoVnetHeader
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return dev, fmt.Errorf("TUN raw conn: %w", err)
	}
	return newTCPWriteTUN(dev, rc), nil
}

// tcpWriteTUN is the library's TUN (every method but Write delegated) whose
// TCP packets are written by weft's TCP writer through rc, the same
// descriptor, and whose other packets by the library's Write.
type tcpWriteTUN struct {
	tun.Device
	mu   sync.Mutex // the device writes from one goroutine per peer
	tcp  *tundev.TCPWriter
	pkts [][]byte // the packets of the Write in progress: bufs[i][offset:]
	rest [][]byte // its buffers that are not TCP, for the library's Write
}

func newTCPWriteTUN(dev tun.Device, rc syscall.RawConn) *tcpWriteTUN {
	n := max(dev.BatchSize(), 1)
	return &tcpWriteTUN{Device: dev, tcp: tundev.NewTCPWriter(rc), pkts: make([][]byte, 0, n), rest: make([][]byte, 0, n)}
}

// Write writes the packets bufs[i][offset:] (bare IP packets, complete
// checksums) into the TUN: runs of TCP segments of one flow as one
// superpacket, other TCP packets one by one, and the rest (UDP, ICMP, ...)
// through the library's Write, which coalesces UDP; offset leaves it the
// room for its virtio-net header. It may rewrite the headers of the
// packets it coalesces. As tun.Device's Write, it returns how many packets
// were written and the errors of those that were not; a closed device
// stops it at once with an error that is os.ErrClosed.
func (t *tcpWriteTUN) Write(bufs [][]byte, offset int) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pkts := t.pkts[:0]
	for _, b := range bufs {
		pkts = append(pkts, b[offset:])
	}
	rest := t.rest[:0]
	written := 0
	var errs error
	for i := 0; i < len(pkts); {
		segs, err := t.tcp.WriteRun(pkts[i:], false)
		if segs == 0 {
			rest = append(rest, bufs[i])
			i++
			continue
		}
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				t.keep(pkts, rest)
				return written, os.ErrClosed
			}
			errs = errors.Join(errs, fmt.Errorf("write TUN: %d TCP packets: %w", segs, err))
		} else {
			written += segs
		}
		i += segs
	}
	if len(rest) > 0 {
		// The library's Write returns bytes, not packets: its packets count
		// as written when it reports no error.
		if _, err := t.Device.Write(rest, offset); err != nil {
			if errors.Is(err, os.ErrClosed) {
				t.keep(pkts, rest)
				return written, os.ErrClosed
			}
			errs = errors.Join(errs, err)
		} else {
			written += len(rest)
		}
	}
	t.keep(pkts, rest)
	return written, errs
}

// keep keeps the (possibly grown) scratch slices for the next Write,
// holding no buffer of the device's.
func (t *tcpWriteTUN) keep(pkts, rest [][]byte) {
	clear(pkts)
	clear(rest)
	t.pkts, t.rest = pkts[:0], rest[:0]
}
