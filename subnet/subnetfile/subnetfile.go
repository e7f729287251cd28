// Package subnetfile reads and writes the subnet file (default
// /run/weft/subnet.env) that weftd writes once it holds a lease and that the
// CNI plugin reads. It has no dependencies beyond the standard library so
// that the CNI plugin binary stays small.
//
// Format (one KEY=VALUE per line, like flannel's subnet.env):
//
//	WEFT_NETWORK=10.244.0.0/16
//	WEFT_SUBNET=10.244.7.1/24
//	WEFT_MTU=1468
//	WEFT_IPMASQ=false
package subnetfile

import (
	"bufio"
	"bytes"
	"errors"
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
	Subnet netip.Prefix
	// MTU is the overlay MTU containers must use.
	MTU int
	// IPMasq tells whether traffic leaving the network is masqueraded.
	IPMasq bool
}

// Validate checks that the fields are consistent.
func (e Env) Validate() error {
	if !e.Network.IsValid() || !e.Network.Addr().Is4() {
		return errors.New("WEFT_NETWORK: missing or not an IPv4 prefix")
	}
	if !e.Subnet.IsValid() || !e.Subnet.Addr().Is4() {
		return errors.New("WEFT_SUBNET: missing or not an IPv4 prefix")
	}
	if e.Subnet.Bits() < e.Network.Bits() || !e.Network.Contains(e.Subnet.Addr()) {
		return fmt.Errorf("WEFT_SUBNET %s is not inside WEFT_NETWORK %s", e.Subnet, e.Network)
	}
	if e.MTU < 576 || e.MTU > MaxMTU {
		return fmt.Errorf("WEFT_MTU %d out of range [576, %d]", e.MTU, MaxMTU)
	}
	return nil
}

// Marshal renders the file content.
func (e Env) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "WEFT_NETWORK=%s\n", e.Network)
	fmt.Fprintf(&b, "WEFT_SUBNET=%s\n", e.Subnet)
	fmt.Fprintf(&b, "WEFT_MTU=%d\n", e.MTU)
	fmt.Fprintf(&b, "WEFT_IPMASQ=%t\n", e.IPMasq)
	return b.Bytes()
}

// Parse parses file content. Unknown keys are ignored (forward
// compatibility); missing or malformed known keys are errors.
func Parse(data []byte) (Env, error) { return parse(data, "WEFT_") }

// ParseFlannel parses flannel's subnet.env (FLANNEL_NETWORK, FLANNEL_SUBNET,
// FLANNEL_MTU, FLANNEL_IPMASQ; flanneld's other keys are ignored).
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
	for _, k := range []string{"NETWORK", "SUBNET", "MTU"} {
		if k = prefix + k; !seen[k] {
			return Env{}, fmt.Errorf("%s missing", k)
		}
	}
	if err := e.Validate(); err != nil {
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
