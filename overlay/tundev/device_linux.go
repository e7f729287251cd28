package tundev

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// Device is a TUN device with its address and route, read and written in
// batches through one or more queues (IFF_MULTI_QUEUE when more than one).
type Device struct {
	queues []*Queue
}

// Queue is one queue of the device: its own file descriptor, reader and
// writer. The kernel hands every packet it sends into the device to one
// queue, chosen per flow. Read is owned by one goroutine and Write by
// another; Inject may be called from any goroutine.
type Queue struct {
	dev  tun.Device
	vnet bool
	r    *reader // nil without virtio headers: the library reads
	w    *writer
}

// Create removes a stale TUN of the same name (see removeStaleTUN), creates the TUN with virtio-net offloads (wireguard's CreateTUN enables
// TSO/USO on read and GRO on write when the kernel allows), assigns the
// node subnet's network address /32, brings it up and routes the overlay
// network through it, all in the current network namespace. maxBatch is the
// largest batch Read fills and Write takes. With queues > 1 the device is
// created with IFF_MULTI_QUEUE and that many queues attached.
func Create(name string, mtu int, addrs Addrs, maxBatch, queues int, log *slog.Logger) (*Device, error) {
	if queues < 1 || queues > maxQueues {
		return nil, fmt.Errorf("create TUN %s: %d queues (1 to %d)", name, queues, maxQueues)
	}
	if err := removeStaleTUN(name); err != nil {
		return nil, err
	}
	devs, err := createQueues(name, mtu, queues)
	if err != nil {
		return nil, fmt.Errorf("create TUN %s: %w", name, err)
	}
	d := &Device{}
	fail := func(err error) (*Device, error) {
		for _, dev := range devs {
			_ = dev.Close()
		}
		return nil, err
	}
	if err := configureAddrs(name, addrs); err != nil {
		return fail(err)
	}
	for _, dev := range devs {
		q := &Queue{dev: dev, vnet: HasVnetHeader(dev.File())}
		if q.w, err = newWriter(dev, q.vnet, maxBatch); err != nil {
			return fail(err)
		}
		if q.vnet {
			if q.r, err = newReader(dev.File()); err != nil {
				return fail(err)
			}
		}
		d.queues = append(d.queues, q)
	}
	go drainEvents(devs[0])
	if log != nil {
		log.Info("TUN device up", "device", name, "address", addrs.Subnet.Masked().Addr(), "mtu", mtu,
			"route", addrs.Network, "ipv6_address", addrs.IPv6Subnet.Masked().Addr(), "ipv6_route", addrs.IPv6Network, "tun_batch", devs[0].BatchSize(), "tun_vnet_hdr", d.queues[0].vnet, "queues", queues)
	}
	return d, nil
}

// maxQueues bounds --queues (the kernel allows 256 per TUN).
const maxQueues = 64

// createQueues creates the TUN: with one queue through the tun library as
// before; with several, each queue is attached here (the library has no
// multi-queue flag) and wrapped: queue 0 with CreateTUNFromFile (MTU, link
// events), the others unmonitored.
func createQueues(name string, mtu, queues int) ([]tun.Device, error) {
	if queues == 1 {
		dev, err := tun.CreateTUN(name, mtu)
		if err != nil {
			return nil, err
		}
		return []tun.Device{dev}, nil
	}
	var devs []tun.Device
	fail := func(err error) ([]tun.Device, error) {
		for _, dev := range devs {
			_ = dev.Close()
		}
		return nil, err
	}
	for i := range queues {
		fd, err := attachQueue(name)
		if err != nil {
			return fail(fmt.Errorf("queue %d: %w", i, err))
		}
		var dev tun.Device
		if i == 0 {
			f := os.NewFile(uintptr(fd), "/dev/net/tun")
			if dev, err = tun.CreateTUNFromFile(f, mtu); err != nil {
				_ = f.Close()
			}
		} else {
			// On error the library may have wrapped fd in a file already
			// (closed by its finalizer): not closed here, never twice.
			dev, _, err = tun.CreateUnmonitoredTUNFromFD(fd)
		}
		if err != nil {
			return fail(fmt.Errorf("queue %d: %w", i, err))
		}
		devs = append(devs, dev)
	}
	return devs, nil
}

// attachQueue opens /dev/net/tun and attaches it as a queue of the
// multi-queue TUN name (creating the device on the first call), with
// virtio-net headers, non-blocking.
func attachQueue(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_MULTI_QUEUE)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("TUNSETIFF multi-queue: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// drainEvents consumes the TUN's link events so its listener never blocks.
func drainEvents(dev tun.Device) {
	for range dev.Events() {
	}
}

// Addrs are the node's subnets and the overlay networks the TUN carries: an
// IPv4 pair, an IPv6 pair, or both (invalid prefixes leave a family out).
type Addrs struct {
	Subnet, Network         netip.Prefix
	IPv6Subnet, IPv6Network netip.Prefix
}

func configure(name string, subnet, network netip.Prefix) error {
	return configureAddrs(name, Addrs{Subnet: subnet, Network: network})
}

// configureAddrs gives the TUN name each family's subnet network address
// (/32, /128, as flannel does on its devices), brings it up and routes each
// network through it.
func configureAddrs(name string, a Addrs) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up new device %s: %w", name, err)
	}
	type family struct{ subnet, network netip.Prefix }
	var fams []family
	for _, f := range []family{{a.Subnet, a.Network}, {a.IPv6Subnet, a.IPv6Network}} {
		if f.subnet.IsValid() && f.network.IsValid() {
			fams = append(fams, f)
		}
	}
	if len(fams) == 0 {
		return fmt.Errorf("configure %s: no subnet and network", name)
	}
	if err := noIPv6LinkLocal(link); err != nil {
		return err
	}
	for _, f := range fams {
		bits := f.subnet.Addr().BitLen()
		// NODAD: the address is this node's own in its lease; waiting for
		// duplicate address detection would keep it tentative (unusable as
		// a source) for a second on a link that has no neighbours.
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: f.subnet.Masked().Addr().AsSlice(), Mask: net.CIDRMask(bits, bits)}}
		if bits == 128 {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("add address %v to %s: %w", addr.IPNet, name, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	for _, f := range fams {
		bits := f.network.Addr().BitLen()
		route := &netlink.Route{
			LinkIndex: link.Attrs().Index,
			Dst:       &net.IPNet{IP: f.network.Masked().Addr().AsSlice(), Mask: net.CIDRMask(f.network.Bits(), bits)},
			Scope:     netlink.SCOPE_LINK,
		}
		if err := netlink.RouteReplace(route); err != nil {
			return fmt.Errorf("route %v dev %s: %w", route.Dst, name, err)
		}
	}
	return nil
}

// HasVnetHeader reports whether the TUN device file was opened with IFF_VNET_HDR.
func HasVnetHeader(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var flags uint16
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		ifr, err := unix.NewIfreq("")
		if err != nil {
			ioErr = err
			return
		}
		if ioErr = unix.IoctlIfreq(int(fd), unix.TUNGETIFF, ifr); ioErr == nil {
			flags = ifr.Uint16()
		}
	}); err != nil || ioErr != nil {
		return false
	}
	return flags&unix.IFF_VNET_HDR != 0
}

// VnetHeader reports whether the device carries virtio-net headers (offloads on).
func (d *Device) VnetHeader() bool { return d.queues[0].vnet }

// Queues returns the device's queues (one unless created with several).
func (d *Device) Queues() []*Queue { return d.queues }

// Close removes the device (and so its address and route): it closes every
// queue; the kernel deletes the device with the last one.
func (d *Device) Close() error {
	var errs []error
	for _, q := range d.queues {
		if err := q.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Read blocks until packets arrive and reads them into bufs[i][Headroom:]
// (each buffer BufSize bytes), their lengths in sizes; partial[i] reports a
// TCP segment whose checksum field holds only the pseudo-header sum. The
// segments of a TSO superpacket are not copied: packet i is its headers at
// bufs[i][Headroom:] followed by tails[i], a view into another buffer of the
// batch (sizes[i] counts both; tails[i] is nil for a contiguous packet). It
// returns how many packets it read and how many frames the kernel handed over
// malformed (dropped). After the first packet it drains what is already
// queued without blocking; it stops after a TSO superpacket.
// FoundEmpty says whether a read found the queue empty since the last call
// (always true without virtio headers: the library reads, and this is not
// known).
func (q *Queue) FoundEmpty() bool {
	if q.r == nil {
		return true
	}
	return q.r.takeEmpty()
}

func (q *Queue) Read(bufs [][]byte, sizes []int, partial []bool, tails [][]byte) (n, malformed int, err error) {
	if q.r != nil {
		return q.r.read(bufs, sizes, partial, tails)
	}
	clear(partial)
	clear(tails)
	n, err = q.dev.Read(bufs, sizes, Headroom)
	if errors.Is(err, tun.ErrTooManySegments) {
		return 0, 1, nil
	}
	return n, 0, err
}

// Write writes pkts (bare packets: no headroom needed) into the TUN,
// coalescing TCP runs into GSO superpackets without copying them (writev).
// It may rewrite the headers of the packets it coalesces. It returns how many
// writes failed, and an error only when the device is closed.
func (q *Queue) Write(pkts [][]byte, partial []bool) (int, error) {
	return q.w.write(pkts, partial)
}

// Inject writes locally generated packets (bufs[i][offset:]) through the tun
// library; it is safe to call concurrently with Write.
func (q *Queue) Inject(bufs [][]byte, offset int) (int, error) { return q.dev.Write(bufs, offset) }

// SetReadDeadline unblocks Read at t (os.ErrDeadlineExceeded); the zero time clears it.
func (q *Queue) SetReadDeadline(t time.Time) error { return q.dev.File().SetReadDeadline(t) }

// Close detaches and closes this queue (the device goes with its last queue).
func (q *Queue) Close() error { return q.dev.Close() }

// ErrForeignLink is wrapped in Create's error when a link of the device's name
// exists and is not a stale TUN: weft leaves it alone and does not start.
var ErrForeignLink = errors.New("the device name is taken")

// ErrTUNHeld is wrapped in CheckNotHeld's error, and in Create's with
// ErrForeignLink, when a process holds the TUN of the device's name.
var ErrTUNHeld = errors.New("a process holds the TUN")

// CheckNotHeld returns an error wrapping ErrTUNHeld when name is a TUN
// that a process holds (another weftd, most likely); nil when there is no
// link of that name, a stale TUN, or a link of another kind (Create
// refuses those itself). It changes nothing.
func CheckNotHeld(name string) error {
	link, err := netlink.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up device %s: %w", name, err)
	}
	if t, ok := link.(*netlink.Tuntap); !ok || t.Mode != netlink.TUNTAP_MODE_TUN || t.MasterIndex != 0 {
		return nil
	}
	if err := staleTUN(link); errors.Is(err, ErrTUNHeld) {
		return fmt.Errorf("TUN %s: %w", name, err)
	}
	return nil
}

// removeStaleTUN deletes a link called name only when it is a TUN that no
// process holds (a persistent leftover): its routes go with it. Any other
// link of that name (a bridge, a veth, the underlay, a TAP, a TUN another
// process has open, e.g. a running weftd) is left alone and reported: weft
// must never delete what is not its own.
func removeStaleTUN(name string) error {
	old, err := netlink.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up device %s: %w", name, err)
	}
	if err := staleTUN(old); err != nil {
		return fmt.Errorf("refusing to replace link %s: %w (choose another TUN name, or remove it yourself): %w", name, err, ErrForeignLink)
	}
	if err := netlink.LinkDel(old); err != nil {
		return fmt.Errorf("remove stale TUN %s: %w", name, err)
	}
	return nil
}

// staleTUN says why link is not a stale TUN, or nil when it is one.
func staleTUN(link netlink.Link) error {
	t, ok := link.(*netlink.Tuntap)
	switch {
	case !ok:
		return fmt.Errorf("it is a %s device, not a TUN", link.Type())
	case t.Mode != netlink.TUNTAP_MODE_TUN:
		return errors.New("it is a TAP device, not a TUN")
	case t.MasterIndex != 0:
		return fmt.Errorf("it is attached to master link %d", t.MasterIndex)
	case t.Flags&netlink.TUNTAP_MULTI_QUEUE != 0:
		// The kernel reports attached queues of multi-queue TUNs only.
		if t.Queues > 0 {
			return fmt.Errorf("%w (%d queue(s) attached; another weftd?)", ErrTUNHeld, t.Queues)
		}
		return nil
	}
	return probeTUNHeld(t.Name)
}

// probeTUNHeld attaches to the single-queue TUN name for a moment: the
// kernel refuses (EBUSY) while another process holds it.
func probeTUNHeld(name string) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/net/tun to probe it: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	switch err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%w (another weftd?)", ErrTUNHeld)
	case err != nil:
		return fmt.Errorf("probe the TUN: %w", err)
	}
	return nil
}

// ipv6MinMTU is IPv6's minimum link MTU (RFC 8200).
const ipv6MinMTU = 1280

// noIPv6LinkLocal keeps the kernel from giving the (still down) TUN an
// IPv6 link-local address when it comes up: with one, the kernel sends
// router solicitations into the TUN, which the IPv4 data path drops (an
// idle node counted tx_drops.not_ipv4). IN6_ADDR_GEN_MODE_NONE rather than
// disable_ipv6: IPv6 addresses can still be configured on the device. A
// kernel without IPv6 has nothing to keep from it.
func noIPv6LinkLocal(link netlink.Link) error {
	if _, err := os.Stat("/proc/sys/net/ipv6"); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := netlink.LinkSetIP6AddrGenMode(link, nl.IN6_ADDR_GEN_MODE_NONE); err != nil {
		if errors.Is(err, unix.EAFNOSUPPORT) && link.Attrs().MTU < ipv6MinMTU {
			// Below IPv6's minimum MTU the kernel keeps no IPv6 state for
			// the device at all: no link-local address either. (A
			// Backend.MTU of 1300 gave weft0 1268 and weftd exited here.)
			return nil
		}
		return fmt.Errorf("%s: IPv6 address generation mode none (no link-local address): %w", link.Attrs().Name, err)
	}
	return nil
}

// PrepareName makes name free for a new TUN: a stale TUN of that name (no
// process holds it) is removed; any other link there is refused with
// ErrForeignLink. For a TUN made by another library (the wireguard backend's).
func PrepareName(name string) error { return removeStaleTUN(name) }

// ConfigureAddrs is Configure for both families (see Addrs).
func ConfigureAddrs(name string, a Addrs) error { return configureAddrs(name, a) }

// Configure gives the TUN name this node's address (the subnet's network
// address /32), brings it up and routes network through it, as Create does.
func Configure(name string, subnet, network netip.Prefix) error {
	return configure(name, subnet, network)
}
