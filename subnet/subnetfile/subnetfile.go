// Package subnetfile reads and writes the subnet file (default
// /run/weft/subnet.env) that weftd writes once it holds a lease and that the
// CNI plugin reads. It has no dependencies beyond the standard library so
// that the CNI plugin binary stays small.
//
// Format (one KEY=VALUE per line, like flannel's subnet.env):
//
//	WEFT_NETWORK=10.244.0.0/16
//	WEFT_SUBNET=10.244.7.1/24
//	WEFT_IPV6_NETWORK=fd10:244::/56
//	WEFT_IPV6_SUBNET=fd10:244:0:7::1/64
//	WEFT_MTU=1468
//	WEFT_IPMASQ=false
//
// Each family's pair of keys is there when the network has that family:
// WEFT_NETWORK and WEFT_SUBNET for IPv4, WEFT_IPV6_NETWORK and
// WEFT_IPV6_SUBNET for IPv6 (both pairs for dual stack, one for a
// single-family network; flanneld writes its subnet.env the same way).
package subnetfile

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DefaultPath is where weftd writes the file unless told otherwise.
const DefaultPath = "/run/weft/subnet.env"

// MaxMTU is the largest container MTU: an inner packet must still fit one
// outer IPv4 packet (65535 bytes) after the outer IPv4 (20) and UDP (8)
// headers and weft's header (4).
const MaxMTU = 65535 - 20 - 8 - 4

// Env is the content of a subnet file.
type Env struct {
	// Network is the whole overlay network, e.g. 10.244.0.0/16.
	Network netip.Prefix
	// Subnet is this node's lease written as its first usable address and
	// the subnet length, e.g. 10.244.7.1/24 (the bridge gateway).
	// Network and Subnet are both invalid when the network has no IPv4
	// (IPv6 only).
	Subnet netip.Prefix
	// IPv6Network is the whole IPv6 overlay network, e.g. fd10:244::/56;
	// invalid when the network has no IPv6.
	IPv6Network netip.Prefix
	// IPv6Subnet is this node's IPv6 lease written like Subnet, e.g.
	// fd10:244:0:7::1/64 (the bridge's IPv6 gateway); invalid when the
	// network has no IPv6.
	IPv6Subnet netip.Prefix
	// MTU is the overlay MTU containers must use.
	MTU int
	// IPMasq tells whether traffic leaving the network is masqueraded.
	IPMasq bool
}

// MinIPv6MTU is the smallest MTU of a link that carries IPv6 (RFC 8200,
// section 5): Linux turns IPv6 off on a device with a smaller MTU.
const MinIPv6MTU = 1280

// HasIPv4 tells whether the file gives this node an IPv4 subnet.
func (e Env) HasIPv4() bool { return e.Subnet.IsValid() }

// HasIPv6 tells whether the file gives this node an IPv6 subnet.
func (e Env) HasIPv6() bool { return e.IPv6Subnet.IsValid() }

// Validate checks that the fields are consistent: each family's network
// and subnet both present or both absent, at least one family, each subnet
// inside its network, an MTU that fits (at least MinIPv6MTU with IPv6).
func (e Env) Validate() error { return e.validate("WEFT_") }

// validate is Validate naming the keys with prefix (WEFT_ or FLANNEL_).
func (e Env) validate(prefix string) error {
	network, subnet := prefix+"NETWORK", prefix+"SUBNET"
	network6, subnet6 := prefix+"IPV6_NETWORK", prefix+"IPV6_SUBNET"
	if !e.Network.IsValid() && !e.Subnet.IsValid() && !e.IPv6Network.IsValid() && !e.IPv6Subnet.IsValid() {
		return fmt.Errorf("%s and %s missing (and no %s, %s): no subnet of either family", network, subnet, network6, subnet6)
	}
	if err := checkFamily(e.Network, e.Subnet, network, subnet, "IPv4", netip.Addr.Is4); err != nil {
		return err
	}
	if err := checkFamily(e.IPv6Network, e.IPv6Subnet, network6, subnet6, "IPv6", isIPv6); err != nil {
		return err
	}
	if e.MTU < 576 || e.MTU > MaxMTU {
		return fmt.Errorf("%sMTU %d out of range [576, %d]", prefix, e.MTU, MaxMTU)
	}
	if e.HasIPv6() && e.MTU < MinIPv6MTU {
		return fmt.Errorf("%sMTU %d is below %d, the least a link carrying IPv6 needs (the network has IPv6)", prefix, e.MTU, MinIPv6MTU)
	}
	return nil
}

// isIPv6 accepts IPv6 addresses, not IPv4-mapped ones (::ffff:10.0.0.1).
func isIPv6(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }

// checkFamily checks one family's network and subnet: both absent, or both
// prefixes of that family with the subnet inside the network.
func checkFamily(network, subnet netip.Prefix, networkKey, subnetKey, family string, is func(netip.Addr) bool) error {
	if !network.IsValid() && !subnet.IsValid() {
		return nil
	}
	if !network.IsValid() {
		return fmt.Errorf("%s missing (%s is %s): a family needs both its network and this node's subnet", networkKey, subnetKey, subnet)
	}
	if !subnet.IsValid() {
		return fmt.Errorf("%s missing (%s is %s): a family needs both its network and this node's subnet", subnetKey, networkKey, network)
	}
	if !is(network.Addr()) {
		return fmt.Errorf("%s %s: not an %s prefix", networkKey, network, family)
	}
	if !is(subnet.Addr()) {
		return fmt.Errorf("%s %s: not an %s prefix", subnetKey, subnet, family)
	}
	if subnet.Bits() < network.Bits() || !network.Contains(subnet.Addr()) {
		return fmt.Errorf("%s %s is not inside %s %s", subnetKey, subnet, networkKey, network)
	}
	return nil
}

// Marshal renders the file content; a family the network lacks has no
// keys.
func (e Env) Marshal() []byte { return e.marshal("WEFT_") }

// marshal renders e with keys named prefix+NETWORK and so on, in the order
// flanneld writes them.
func (e Env) marshal(prefix string) []byte {
	var b bytes.Buffer
	if e.Network.IsValid() || e.Subnet.IsValid() {
		fmt.Fprintf(&b, "%sNETWORK=%s\n%sSUBNET=%s\n", prefix, e.Network, prefix, e.Subnet)
	}
	if e.IPv6Network.IsValid() || e.IPv6Subnet.IsValid() {
		fmt.Fprintf(&b, "%sIPV6_NETWORK=%s\n%sIPV6_SUBNET=%s\n", prefix, e.IPv6Network, prefix, e.IPv6Subnet)
	}
	fmt.Fprintf(&b, "%sMTU=%d\n", prefix, e.MTU)
	fmt.Fprintf(&b, "%sIPMASQ=%t\n", prefix, e.IPMasq)
	return b.Bytes()
}

// Parse parses file content. Unknown keys are ignored (forward
// compatibility); missing or malformed known keys are errors.
func Parse(data []byte) (Env, error) { return parse(data, "WEFT_") }

// ParseFlannel parses flannel's subnet.env (FLANNEL_NETWORK, FLANNEL_SUBNET,
// FLANNEL_IPV6_NETWORK, FLANNEL_IPV6_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ;
// other keys are ignored). Like flannel's own CNI plugin it accepts a file
// with only the IPv6 keys (an IPv6-only network).
func ParseFlannel(data []byte) (Env, error) { return parse(data, "FLANNEL_") }

// parse parses KEY=VALUE lines whose keys carry prefix.
func parse(data []byte, prefix string) (Env, error) {
	var e Env
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, value, ok := strings.Cut(text, "=")
		if !ok {
			return Env{}, fmt.Errorf("line %d: expected KEY=VALUE, got %q", line, text)
		}
		name, ours := strings.CutPrefix(key, prefix)
		if !ours {
			continue
		}
		var err error
		switch name {
		case "NETWORK":
			e.Network, err = netip.ParsePrefix(value)
		case "SUBNET":
			e.Subnet, err = netip.ParsePrefix(value)
		case "IPV6_NETWORK":
			e.IPv6Network, err = netip.ParsePrefix(value)
		case "IPV6_SUBNET":
			e.IPv6Subnet, err = netip.ParsePrefix(value)
		case "MTU":
			e.MTU, err = strconv.Atoi(value)
		case "IPMASQ":
			e.IPMasq, err = strconv.ParseBool(value)
		default:
			continue
		}
		if err != nil {
			return Env{}, fmt.Errorf("line %d: %s: %w", line, key, err)
		}
		seen[key] = true
	}
	if err := sc.Err(); err != nil {
		return Env{}, err
	}
	if k := prefix + "MTU"; !seen[k] {
		return Env{}, fmt.Errorf("%s missing", k)
	}
	if err := e.validate(prefix); err != nil {
		return Env{}, err
	}
	return e, nil
}

// MaxSize is the largest subnet file Read accepts: weftd writes about 100
// bytes; anything much larger is not its file.
const MaxSize = 4 << 10

// Read reads and parses the file at path. A missing file yields an error
// that matches os.ErrNotExist with errors.Is. The file must be a regular file
// of at most MaxSize bytes (a device such as /dev/zero, a FIFO or a huge file
// is an error, not an endless read).
func Read(path string) (Env, error) { return read(path, Parse) }

// ReadFlannel reads flannel's subnet.env at path (ParseFlannel), with
// Read's limits.
func ReadFlannel(path string) (Env, error) { return read(path, ParseFlannel) }

func read(path string, parse func([]byte) (Env, error)) (Env, error) {
	// Non-blocking: opening a FIFO must not wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return Env{}, fmt.Errorf("read subnet file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Env{}, fmt.Errorf("read subnet file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Env{}, fmt.Errorf("subnet file %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return Env{}, fmt.Errorf("read subnet file: %w", err)
	}
	if len(data) > MaxSize {
		return Env{}, fmt.Errorf("subnet file %s is larger than %d bytes: not weftd's", path, MaxSize)
	}
	e, err := parse(data)
	if err != nil {
		return Env{}, fmt.Errorf("subnet file %s: %w", path, err)
	}
	return e, nil
}

// Write writes the file atomically (temporary file in the same directory,
// fsync, rename), creating the directory if needed.
func Write(path string, e Env) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("write subnet file: %w", err)
	}
	if err := writeAtomic(path, e.Marshal()); err != nil {
		return fmt.Errorf("write subnet file: %w", err)
	}
	return nil
}

// writeAtomic replaces path with data: temporary file in the same
// directory, fsync, rename; the directory is created if needed. An
// existing path must be a regular file (or a link to one): a rename would
// replace a device, a FIFO or a socket.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("%s exists and is not a regular file (%s): not replacing it", path, fi.Mode().Type())
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
