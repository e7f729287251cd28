package cni

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// HeldBy tells who holds addr in the address store at dataDir, reading it
// without taking the lock (for weftd, to check after a restart that a
// container it knew still holds its address). held is false when the
// address is free or the store does not exist.
func HeldBy(dataDir string, addr netip.Addr) (owner Attachment, held bool, err error) {
	data, err := readStoreFile(filepath.Join(dataDir, addr.String()))
	if errors.Is(err, os.ErrNotExist) {
		return Attachment{}, false, nil
	}
	if err != nil {
		return Attachment{}, false, fmt.Errorf("ipam store %s: %w", dataDir, err)
	}
	return parseOwner(string(data)), true, nil
}
