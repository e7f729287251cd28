package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/weftnet/weft/backend/wireguard"
	"github.com/weftnet/weft/backend/wireguard/keyfile"
)

// rotateKey replaces the node's WireGuard private key in stateDir; the
// running weftd notices the file change and publishes the new public key.
func rotateKey(stateDir string, stdout io.Writer) error {
	path := filepath.Join(stateDir, wireguard.KeyFileName)
	k, err := keyfile.Rotate(path)
	if err != nil {
		return fmt.Errorf("wireguard rotate-key: %w", err)
	}
	fmt.Fprintf(stdout, "new WireGuard key in %s, public key %s\nweftd publishes it within %s\n", path, k.Public(), wireguard.KeyCheckInterval)
	return nil
}
