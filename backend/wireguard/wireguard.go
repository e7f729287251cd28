// Package wireguard is weft's encrypted backend: flannel's "wireguard"
// Backend.Type, with WireGuard itself as the data path, embedded from
// golang.zx2c4.com/wireguard (its device, its UDP bind, its TUN with
// offloads); weft adds no protocol or cryptography of its own. The node's
// private key lives in a file of its own (keyfile), its public key in the
// lease (BackendData {"PublicKey","Port"}, as flannel writes it); every other
// node's lease becomes a peer (its key, endpoint PublicIP:Port, its subnet as
// the only allowed IP), removed as soon as its lease goes. The device's UAPI
// socket is where wireguard-go's own is (/var/run/wireguard/<device>.sock),
// so `wg show` works against it.
package wireguard

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/backend/wireguard/keyfile"
	"github.com/weftnet/weft/subnet"
)

// Files in the state directory (weftd --state-dir, /var/lib/weft).
const (
	// KeyFileName holds the node's private key (0600, made at the first
	// start, read at every other).
	KeyFileName = "wireguard.key"
	// PSKFileName may hold a pre-shared key (0600), instead of putting it
	// in the network config, where every etcd reader sees it.
	PSKFileName = "wireguard.psk"
)

// Overhead is what WireGuard adds to a packet on an IPv4 underlay: outer
// IPv4 (20) and UDP (8) headers, the data message header (16) and the
// Poly1305 tag (16). Padding never takes a packet past the device MTU.
const Overhead = 20 + 8 + 16 + 16

// Backend is one node's WireGuard data path.
type Backend struct {
	node    backend.Node
	cfg     Config
	keyPath string
	pskPath string
	log     *slog.Logger

	keyMu sync.Mutex
	priv  keyfile.Key // zero until LeaseAttrs loaded it
	psk   keyfile.Key

	// mu orders Apply and key rotation (both change the device).
	mu    sync.Mutex
	set   *peerSet
	list  atomic.Pointer[[]backend.Peer]
	bad   atomic.Uint64 // leases ignored for their key (from set, for readers)
	evs   eventCounts
	stats byteTotals

	dev deviceOps // nil before Start
	mtu int
	// keyStamp identifies the key file last read (rotation: a new file);
	// attrsChanged is signalled when this node's lease attributes change.
	keyStamp     fileStamp
	attrsChanged chan struct{}
	run          *running // what Start made (device_linux.go)
}

// deviceOps is what the backend needs of the running device: the real one
// is wireguard-go's (device_linux.go), tests use a fake.
type deviceOps interface {
	IpcSet(uapiConf string) error
	IpcGet() (string, error)
	// Initiate starts a handshake with the peer of key now.
	Initiate(key keyfile.Key)
}

// Factory registers the backend: Check validates the section without
// touching the host, New makes a backend (no file or device yet).
func Factory() backend.Factory {
	return backend.Factory{
		Check: func(cfg *subnet.Config) error {
			if _, err := parseSection(cfg); err != nil {
				return err
			}
			return backend.CheckMTU(cfg.Backend, mtuFor)
		},
		New: New,
	}
}

// New makes the backend of node; the key is read (or made) by LeaseAttrs,
// the device by Start.
func New(node backend.Node) (backend.Backend, error) {
	cfg, err := parseSection(node.Config)
	if err != nil {
		return nil, backend.ConfigError(err)
	}
	if node.Options.StateDir == "" {
		return nil, backend.ConfigError(errors.New("the wireguard backend keeps its private key in a state directory: give weftd --state-dir"))
	}
	pub4, pub6 := node.Underlay.PublicIP, node.Underlay.PublicIPv6
	switch {
	case !pub4.Is4() && !pub6.Is6():
		return nil, backend.ConfigError(errors.New("the wireguard backend needs an underlay address (PublicIP or PublicIPv6)"))
	case cfg.Mode == ModeIPv4 && !pub4.Is4():
		return nil, backend.ConfigError(errors.New("Backend.Mode \"ipv4\" needs an IPv4 PublicIP"))
	case cfg.Mode == ModeIPv6 && !pub6.Is6():
		return nil, backend.ConfigError(errors.New("Backend.Mode \"ipv6\" needs an IPv6 PublicIP (PublicIPv6)"))
	}
	mtu := mtuFor(node.OutgoingMTU())
	if pub6.Is6() && (cfg.Mode == ModeIPv6 || cfg.Mode == ModeAuto || !pub4.Is4()) {
		mtu -= 20 // peers may be reached over IPv6: a 40-byte outer header
	}
	b := &Backend{
		node:    node,
		cfg:     cfg,
		keyPath: filepath.Join(node.Options.StateDir, KeyFileName),
		pskPath: filepath.Join(node.Options.StateDir, PSKFileName),
		log:     node.Log,
		mtu:     mtu,
	}
	b.list.Store(&[]backend.Peer{})
	b.attrsChanged = make(chan struct{}, 1)
	return b, nil
}

// loadKeys reads (or makes) the private key and reads the optional PSK
// file; a file others can read is a configuration error (exit 78).
func (b *Backend) loadKeys() error {
	b.keyMu.Lock()
	defer b.keyMu.Unlock()
	if !b.priv.IsZero() {
		return nil
	}
	priv, created, err := keyfile.LoadOrCreate(b.keyPath)
	if err != nil {
		if errors.Is(err, keyfile.ErrInsecure) {
			return backend.ConfigError(err)
		}
		return fmt.Errorf("wireguard private key: %w", err)
	}
	psk := b.cfg.PSK
	filePSK, err := keyfile.Load(b.pskPath)
	switch {
	case err == nil:
		if !psk.IsZero() && psk != filePSK {
			return backend.ConfigError(fmt.Errorf("pre-shared key: %s and the network config's PSK differ (give one of them)", b.pskPath))
		}
		psk = filePSK
	case errors.Is(err, keyfile.ErrInsecure):
		return backend.ConfigError(err)
	case !isNotExist(err):
		return backend.ConfigError(fmt.Errorf("pre-shared key: %w", err))
	}
	b.priv, b.psk = priv, psk
	b.keyStamp, _ = stampOf(b.keyPath)
	if created {
		b.log.Info("generated the WireGuard private key", "file", b.keyPath, "publicKey", priv.Public())
	} else {
		b.log.Info("WireGuard private key", "file", b.keyPath, "publicKey", priv.Public())
	}
	return nil
}

// LeaseAttrs publishes this node's public key and port, as flannel does.
func (b *Backend) LeaseAttrs() (subnet.LeaseAttrs, error) {
	if err := b.loadKeys(); err != nil {
		return subnet.LeaseAttrs{}, err
	}
	b.keyMu.Lock()
	pub := b.priv.Public()
	b.keyMu.Unlock()
	attrs := subnet.NewWireGuardLeaseAttrs(b.node.Underlay.PublicIP, b.cfg.ListenPort, pub)
	if ip := b.node.Underlay.PublicIPv6; ip.Is6() {
		attrs.PublicIPv6 = ip.String()
	}
	if b.node.Config.HasIPv6() && !b.separateDualStack() {
		// flannel's IPv6 side: the same key; the port is where weft's one
		// device listens (both families), not flannel's ListenPortV6.
		attrs.BackendV6Data = attrs.BackendData
	}
	return attrs, nil
}

// separateDualStack tells whether the network is dual-stack in Mode
// separate, where flannel runs a second device for IPv6 (flannel-wg-v6,
// on ListenPortV6, allowed IPs the peers' IPv6 subnets only) and
// configures it from each lease's BackendV6Data. weft runs one device, so
// it publishes no BackendV6Data there: with one naming weft's port, a
// flannel node's IPv6 device would handshake with weft's device under the
// same key as its IPv4 device, move weft's endpoint for that node to
// itself, and drop the IPv4 traffic weft then sends it (not in its allowed
// IPs). Without it, flanneld leaves weft out of its IPv6 device (logged:
// "failed to setup ipv6 peer") and IPv4 between them keeps working; IPv6
// between a weft node and a flannel node needs Mode auto, ipv4 or ipv6
// (one device on both sides). Between weft nodes nothing changes: weft
// reads BackendData only. (TestWireGuardSeparateModeFlannelPeer.)
func (b *Backend) separateDualStack() bool {
	return b.cfg.Mode == ModeSeparate && b.node.Config.HasIPv4() && b.node.Config.HasIPv6()
}

// PublicKey is this node's current public key (zero before LeaseAttrs).
func (b *Backend) PublicKey() keyfile.Key {
	b.keyMu.Lock()
	defer b.keyMu.Unlock()
	if b.priv.IsZero() {
		return keyfile.Key{}
	}
	return b.priv.Public()
}

// Apply turns the other nodes' leases into the device's peers.
func (b *Backend) Apply(snapshot []subnet.Lease, events []subnet.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.set == nil || b.dev == nil {
		b.log.Error("wireguard: lease events before Start; ignored")
		return
	}
	conf := b.set.apply(snapshot, events)
	b.bad.Store(b.set.badKeys)
	if conf != "" {
		if err := b.dev.IpcSet(conf); err != nil {
			// The device refused a peer it was given (a key rejected by
			// the library): it keeps what it had; log and carry on.
			b.log.Error("wireguard: configure peers", "err", err)
		}
	}
	list := b.set.list()
	b.list.Store(&list)
	if snapshot != nil {
		// A whole table (start, restart, resync after an etcd outage):
		// handshake with every peer now. A peer that had a session with
		// this node before a restart keeps sending on it, and this new
		// device drops all of that (it knows no such session); the peer
		// would notice only after 15 s without an answer. Our initiation
		// replaces its session at once. The library skips peers it
		// handshook with in the last 5 s.
		for _, p := range b.set.bySubnet {
			b.dev.Initiate(p.Key)
		}
		b.log.Info("wireguard peers loaded", "peers", len(list))
	}
}

// Peers are the other nodes as WireGuard peers, sorted by subnet.
func (b *Backend) Peers() []backend.Peer { return *b.list.Load() }

// UDPPort is the port peers send to (ListenPort): the container guard
// keeps containers from it.
func (b *Backend) UDPPort() int { return b.cfg.ListenPort }

// Modes is the one mode this backend reports.
func (b *Backend) Modes() []string { return []string{Mode} }

// MTU is the MTU of the device and of the containers: the outgoing MTU
// (Backend.MTU, else the underlay's) minus WireGuard's overhead.
func (b *Backend) MTU() int { return b.mtu }

// mtuFor is the device MTU for outgoing packets of MTU underlay.
func mtuFor(underlay int) int {
	if underlay <= 0 {
		underlay = 1500
	}
	return underlay - Overhead
}

// PeerStatus is one peer's WireGuard state for /status.
type PeerStatus struct {
	Subnet        string `json:"subnet"` // the IPv4 subnet (the IPv6 one in an IPv6-only network)
	IPv6Subnet    string `json:"ipv6Subnet,omitempty"`
	PublicKey     string `json:"publicKey"`
	Endpoint      string `json:"endpoint"`
	LastHandshake string `json:"lastHandshake,omitempty"` // RFC 3339; empty: never
	// HandshakeAgeSeconds is how long ago the last handshake was (-1: never).
	HandshakeAgeSeconds float64 `json:"handshakeAgeSeconds"`
	RxBytes             uint64  `json:"rxBytes"`
	TxBytes             uint64  `json:"txBytes"`
}

// Status reads the device's per-peer state (handshakes, bytes). The byte
// counts are weft's totals per subnet: they never go backwards, also when
// the peer is re-made (a new key) and the library's own counts restart.
func (b *Backend) Status() ([]PeerStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dev == nil || b.set == nil {
		return nil, nil
	}
	text, err := b.dev.IpcGet()
	if err != nil {
		return nil, fmt.Errorf("wireguard: read device state: %w", err)
	}
	byKey := map[keyfile.Key]peerStats{}
	for _, st := range parseStats(text) {
		byKey[st.Key] = st
	}
	now := time.Now()
	out := make([]PeerStatus, 0, len(b.set.bySubnet))
	for _, p := range b.set.list() {
		id := leaseID(p.Subnet, p.IPv6Subnet)
		pp := b.set.bySubnet[id]
		st := byKey[pp.Key]
		rx, tx := b.stats.observe(id, pp.Key, st.RxBytes, st.TxBytes)
		ps := PeerStatus{Subnet: id.String(), PublicKey: pp.Key.String(), Endpoint: p.Endpoint,
			HandshakeAgeSeconds: -1, RxBytes: rx, TxBytes: tx}
		if p.Subnet.IsValid() && p.IPv6Subnet.IsValid() {
			ps.IPv6Subnet = p.IPv6Subnet.String()
		}
		if !st.LastHandshake.IsZero() {
			ps.LastHandshake = st.LastHandshake.UTC().Format(time.RFC3339)
			ps.HandshakeAgeSeconds = now.Sub(st.LastHandshake).Seconds()
		}
		out = append(out, ps)
	}
	return out, nil
}

// byteTotals keeps per-subnet byte totals across re-made peers.
type byteTotals struct {
	last  map[netip.Prefix]peerStats // the library's counts at the last look
	total map[netip.Prefix][2]uint64 // rx, tx
}

// observe folds the library's current counts of the peer (key) of sub into
// the totals and returns them.
func (t *byteTotals) observe(sub netip.Prefix, key keyfile.Key, rx, tx uint64) (uint64, uint64) {
	if t.last == nil {
		t.last, t.total = map[netip.Prefix]peerStats{}, map[netip.Prefix][2]uint64{}
	}
	tot := t.total[sub]
	prev, ok := t.last[sub]
	if !ok || prev.Key != key || rx < prev.RxBytes || tx < prev.TxBytes {
		prev = peerStats{} // a new peer: its counts started at zero
	}
	tot[0] += rx - prev.RxBytes
	tot[1] += tx - prev.TxBytes
	t.total[sub] = tot
	t.last[sub] = peerStats{Key: key, RxBytes: rx, TxBytes: tx}
	return tot[0], tot[1]
}

// Counters are the backend's counters for /status: the handshake events,
// the leases ignored for their key, and each peer's state.
func (b *Backend) Counters() map[string]any {
	peers, err := b.Status()
	if err != nil {
		b.log.Warn("wireguard status", "err", err)
	}
	evs := b.evs.snapshot()
	out := map[string]any{
		"events":          evs,
		"ignoredPeerKeys": b.bad.Load(),
		"peers":           peers,
	}
	return map[string]any{"wireguard": out}
}

// KeyCheckInterval is how often Run looks whether the key file was
// replaced (weftctl wireguard rotate-key).
const KeyCheckInterval = 2 * time.Second

// fileStamp tells two versions of a file apart (a rename makes a new inode).
type fileStamp struct {
	ino   uint64
	mtime time.Time
	size  int64
}

// LeaseAttrsChanged is signalled when this node's lease attributes changed
// (a rotated key): weftd then publishes LeaseAttrs again.
func (b *Backend) LeaseAttrsChanged() <-chan struct{} { return b.attrsChanged }

// checkKey reloads the private key when the key file changed: the device
// takes the new key at once (its sessions end; the next packet makes a new
// handshake), then the new public key is announced for the lease. A
// replaced file that cannot be used (loose mode, junk) is refused and the
// running key kept.
func (b *Backend) checkKey() {
	st, err := stampOf(b.keyPath)
	if err != nil {
		b.log.Error("wireguard: key file", "file", b.keyPath, "err", err)
		return
	}
	b.keyMu.Lock()
	same := st == b.keyStamp
	b.keyMu.Unlock()
	if same {
		return
	}
	k, err := keyfile.Load(b.keyPath)
	if err != nil {
		b.log.Error("wireguard: the key file changed but cannot be used; keeping the running key", "err", err)
		b.keyMu.Lock()
		b.keyStamp = st // logged once per version of the file
		b.keyMu.Unlock()
		return
	}
	b.keyMu.Lock()
	old := b.priv
	b.keyStamp = st
	b.keyMu.Unlock()
	if k == old {
		return
	}
	b.mu.Lock()
	if b.dev != nil {
		if err := b.dev.IpcSet("private_key=" + hex.EncodeToString(k[:]) + "\n"); err != nil {
			b.mu.Unlock()
			b.log.Error("wireguard: set the new private key; keeping the running key", "err", err)
			return
		}
	}
	if b.set != nil {
		b.set.own = k.Public()
	}
	b.keyMu.Lock()
	b.priv = k
	b.keyMu.Unlock()
	b.mu.Unlock()
	b.log.Info("wireguard: key rotated", "file", b.keyPath, "publicKey", k.Public(), "was", old.Public())
	select {
	case b.attrsChanged <- struct{}{}:
	default:
	}
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
