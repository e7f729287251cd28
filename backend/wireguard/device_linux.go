package wireguard

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/backend/devwatch"
	"github.com/weftnet/weft/backend/wireguard/keyfile"
	"github.com/weftnet/weft/overlay/tundev"
	"github.com/weftnet/weft/subnet"
)

// running is what Start made.
type running struct {
	tun  tun.Device
	dev  *device.Device
	uapi net.Listener // nil when the UAPI socket could not be opened
	name string
}

// Start creates the TUN (wireguard-go's, with offloads), gives it this
// node's address and the overlay route, starts the WireGuard device on
// ListenPort with this node's key, and opens the UAPI socket.
func (b *Backend) Start(ctx context.Context, lease subnet.Lease) error {
	if err := b.loadKeys(); err != nil {
		return err
	}
	name := b.node.Options.DeviceName
	if name == "" {
		name = "weft0"
	}
	network := b.node.Config.Network
	if err := tundev.PrepareName(name); err != nil {
		if errors.Is(err, tundev.ErrForeignLink) {
			return backend.ConfigError(err)
		}
		return err
	}
	lt, err := tun.CreateTUN(name, b.mtu)
	if err != nil {
		return fmt.Errorf("wireguard: create TUN %s: %w", name, err)
	}
	// Decrypted TCP goes into the TUN through weft's writer (no copy).
	t, err := withTCPWriter(lt)
	if err != nil {
		b.log.Warn("wireguard: the library's TUN write (copying) for received packets", "device", name, "reason", err)
	}
	r := &running{tun: t, name: name}
	b.run = r
	r.dev = device.NewDevice(t, newBind(b.log), newDeviceLogger(b.log.With("component", "wireguard-go"), &b.evs))
	b.keyMu.Lock()
	priv, psk := b.priv, b.psk
	b.keyMu.Unlock()
	if err := r.dev.IpcSet("private_key=" + hex.EncodeToString(priv[:]) + "\nlisten_port=" + strconv.Itoa(b.cfg.ListenPort) + "\n"); err != nil {
		return fmt.Errorf("wireguard: configure device (port %d): %w", b.cfg.ListenPort, err)
	}
	addrs := tundev.Addrs{IPv6Subnet: lease.IPv6Subnet, IPv6Network: b.node.Config.IPv6Network}
	if b.node.Config.HasIPv4() {
		addrs.Subnet, addrs.Network = lease.Subnet, network
	}
	if err := tundev.ConfigureAddrs(name, addrs); err != nil {
		return fmt.Errorf("wireguard: %w", err)
	}
	if err := r.dev.Up(); err != nil {
		return fmt.Errorf("wireguard: device up (UDP port %d): %w", b.cfg.ListenPort, err)
	}
	b.mu.Lock()
	b.dev = wgDevice{r.dev}
	b.set = newPeerSet(priv.Public(), b.cfg.PersistentKeepaliveInterval, psk, b.log)
	pub4, pub6 := b.node.Underlay.PublicIP, b.node.Underlay.PublicIPv6
	b.set.via = underlay{mode: b.cfg.Mode, has4: pub4.Is4(), has6: pub6.Is6(), public6: pub6.Is6() && !pub6.IsPrivate()}
	b.mu.Unlock()
	// Operators look with `wg show`: the UAPI socket where wireguard-go
	// puts it. Not having it is no reason to stop forwarding.
	uapiName := b.node.Options.UAPIName
	if uapiName == "" {
		uapiName = name
	}
	if f, err := ipc.UAPIOpen(uapiName); err != nil {
		b.log.Warn("wireguard: no UAPI socket: `wg show` will not see the device", "name", uapiName, "err", err)
	} else if l, err := ipc.UAPIListen(uapiName, f); err != nil {
		f.Close()
		b.log.Warn("wireguard: no UAPI socket: `wg show` will not see the device", "name", uapiName, "err", err)
	} else {
		f.Close()
		r.uapi = l
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go r.dev.IpcHandle(c)
			}
		}()
	}
	if b.separateDualStack() {
		b.log.Warn("wireguard: Mode separate on a dual-stack network: weft runs one device for both families and publishes no BackendV6Data; "+
			"a flanneld node in this mode leaves weft out of its IPv6 device (flannel-wg-v6, ListenPortV6), so IPv6 between them is not carried "+
			"(IPv4 is). Use Mode auto, ipv4 or ipv6 to carry IPv6 to flannel nodes too", "listenPortV6", b.cfg.ListenPortV6)
	}
	b.log.Info("wireguard device up", "device", name, "uapi", uapiName, "subnet", lease.Subnet, "ipv6Subnet", lease.IPv6Subnet,
		"route", network, "ipv6Route", b.node.Config.IPv6Network, "mode", b.cfg.Mode,
		"mtu", b.mtu, "listenPort", b.cfg.ListenPort, "publicKey", priv.Public(), "psk", !psk.IsZero(),
		"persistentKeepalive", b.cfg.PersistentKeepaliveInterval, "tunBatch", t.BatchSize())
	return nil
}

// wgDevice is the running wireguard-go device as deviceOps.
type wgDevice struct{ *device.Device }

// Initiate sends a handshake initiation to the peer of key (none: nothing).
func (d wgDevice) Initiate(key keyfile.Key) {
	if p := d.LookupPeer(device.NoisePublicKey(key)); p != nil {
		_ = p.SendHandshakeInitiation(false)
	}
}

// Run waits until ctx ends (nil) or the device is lost (ErrDeviceLost):
// the TUN deleted, renamed or set down (the netlink watch the udp backend
// uses: wireguard-go itself only closes its bind when the TUN goes down,
// and would sit there, not forwarding, until it comes up), or the device
// closed under it (wireguard-go closes it when reading the TUN fails).
func (b *Backend) Run(ctx context.Context) error {
	r := b.run
	if r == nil {
		return errors.New("wireguard: Run before Start")
	}
	watchCtx, lost := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // runs second: the watch has seen the cancel
	defer lost(nil) // runs first
	wg.Go(func() {
		err := devwatch.Watch(watchCtx, r.name, 1, lost)
		if err != nil && watchCtx.Err() == nil {
			b.log.Warn("wireguard: device watch ended; a deleted TUN still closes the device", "err", err)
		}
	})
	t := time.NewTicker(KeyCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-watchCtx.Done():
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("wireguard: %w", context.Cause(watchCtx))
		case <-r.dev.Wait():
			return fmt.Errorf("wireguard device %s closed: %w", r.name, backend.ErrDeviceLost)
		case <-t.C:
			b.checkKey()
		}
	}
}

// stampOf identifies the current version of the file at path.
func stampOf(path string) (fileStamp, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileStamp{}, err
	}
	return fileStamp{ino: st.Ino, mtime: time.Unix(st.Mtim.Unix()), size: st.Size}, nil
}

// Close stops the device and removes the TUN (with its address and route)
// and the UAPI socket; the key file stays for the restart.
func (b *Backend) Close() error {
	r := b.run
	if r == nil {
		return nil
	}
	b.run = nil
	b.mu.Lock()
	b.dev = nil
	b.mu.Unlock()
	if r.uapi != nil {
		_ = r.uapi.Close()
	}
	if r.dev != nil {
		r.dev.Close() // closes the TUN and the bind
	} else if r.tun != nil {
		_ = r.tun.Close()
	}
	return nil
}
