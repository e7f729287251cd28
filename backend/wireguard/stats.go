package wireguard

import (
	"bufio"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/weftnet/weft/backend/wireguard/keyfile"
)

// peerStats is one peer's counters as the device reports them (UAPI "get").
type peerStats struct {
	Key           keyfile.Key
	RxBytes       uint64
	TxBytes       uint64
	LastHandshake time.Time // zero: never
}

// maxUAPIGet bounds what parseStats reads: a peer is a few hundred bytes.
const maxUAPIGet = 16 << 20

// parseStats reads the per-peer counters out of a UAPI "get" answer
// (key=value lines; each peer starts with public_key=).
func parseStats(text string) []peerStats {
	var out []peerStats
	var sec, nsec int64
	flush := func() {
		if len(out) > 0 && (sec != 0 || nsec != 0) {
			out[len(out)-1].LastHandshake = time.Unix(sec, nsec)
		}
		sec, nsec = 0, 0
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch k {
		case "public_key":
			flush()
			var p peerStats
			if b, err := hex.DecodeString(v); err == nil && len(b) == keyfile.Len {
				copy(p.Key[:], b)
			}
			out = append(out, p)
		case "rx_bytes", "tx_bytes":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || len(out) == 0 {
				continue
			}
			if k == "rx_bytes" {
				out[len(out)-1].RxBytes = n
			} else {
				out[len(out)-1].TxBytes = n
			}
		case "last_handshake_time_sec":
			sec, _ = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	flush()
	return out
}
