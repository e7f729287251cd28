package subnetfile

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"syscall"
)

// CheckRegular accepts a missing file or a regular one (a symbolic link
// is followed: replacing the link is harmless, what it points to counts).
// weftd checks the files it will replace with it.
func CheckRegular(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s): weftd will neither read it nor replace it", path, FileKind(fi.Mode()))
	}
	return nil
}

// FileKind names a file type for an error message.
func FileKind(m os.FileMode) string {
	switch {
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return m.Type().String()
}

// ReadBounded reads a regular file of at most limit bytes; anything else
// (a device such as /dev/zero, a FIFO, a larger file) is an error naming
// the limit, never an endless read. It opens without blocking, so a FIFO
// does not wait for a writer.
func ReadBounded(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, FileKind(fi.Mode()))
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %s, the most weft reads there", path, sizeText(limit))
	}
	return data, nil
}

// sizeText is "4096 bytes", or "33554432 bytes (32 MiB)" from 1 MiB up.
func sizeText(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%d bytes (%d MiB)", n, n>>20)
}

// Previous is the subnet an earlier run recorded: in weft's subnet file at
// path, else (flannelPath not "") in flannel's subnet.env that flanneld or
// weftd wrote, so that a node moving from flanneld to weftd keeps its
// subnet. A missing file is no error; an unreadable one is reported in
// warn and skipped. Whether the subnet still fits is for the caller.
func Previous(path, flannelPath string, warn func(error)) netip.Prefix {
	return previous(path, flannelPath, warn, func(e Env) netip.Prefix { return e.Subnet })
}

// PreviousIPv6 is Previous for the IPv6 subnet (invalid when the earlier
// run had none).
func PreviousIPv6(path, flannelPath string, warn func(error)) netip.Prefix {
	return previous(path, flannelPath, warn, func(e Env) netip.Prefix { return e.IPv6Subnet })
}

func previous(path, flannelPath string, warn func(error), field func(Env) netip.Prefix) netip.Prefix {
	read := func(path string, read func(string) (Env, error)) netip.Prefix {
		env, err := read(path)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				warn(err)
			}
			return netip.Prefix{}
		}
		if p := field(env); p.IsValid() {
			return p.Masked()
		}
		return netip.Prefix{}
	}
	if p := read(path, Read); p.IsValid() || flannelPath == "" {
		return p
	}
	return read(flannelPath, ReadFlannel)
}
