// Package keyfile keeps a node's WireGuard private key (and an optional
// pre-shared key) in a file only its owner can read: generated once, read
// back at every start (the same PublicKey after a restart, so peers keep
// one entry per node), replaced atomically when rotated. The file holds the
// key in WireGuard's text form (base64, as `wg genkey` prints it), so `wg`
// and an operator can read it.
package keyfile

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/curve25519"
)

// Len is the length of a key.
const Len = 32

// Key is a Curve25519 private or public key, or a pre-shared key.
type Key [Len]byte

// String renders k in WireGuard's text form (standard base64).
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// IsZero tells whether k is all zeros (no key).
func (k Key) IsZero() bool { return k == Key{} }

// Generate returns a new private key: 32 random bytes clamped as a
// Curve25519 scalar, as `wg genkey` makes them.
func Generate() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("generate WireGuard key: %w", err)
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k, nil
}

// Public returns the public key of private key k.
func (k Key) Public() Key {
	pub, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil {
		// Only a low-order result fails, which a clamped scalar times the
		// base point never gives; a zero key is no private key either.
		return Key{}
	}
	var p Key
	copy(p[:], pub)
	return p
}

// Parse decodes a key from its text form (surrounding white space, such as
// the newline `wg genkey` ends with, is ignored).
func Parse(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if len(s) != base64.StdEncoding.EncodedLen(Len) {
		return Key{}, fmt.Errorf("want base64 of %d bytes (%d characters), got %d characters", Len, base64.StdEncoding.EncodedLen(Len), len(s))
	}
	var buf [Len + 1]byte // 44 characters may decode to 33 bytes
	n, err := base64.StdEncoding.Strict().Decode(buf[:], []byte(s))
	if err != nil || n != Len {
		return Key{}, fmt.Errorf("not base64 of %d bytes", Len)
	}
	var k Key
	copy(k[:], buf[:Len])
	return k, nil
}

// ErrInsecure is wrapped in the error for a key file that others than its
// owner could read or replace: weftd refuses to start with it.
var ErrInsecure = errors.New("key file is not private to its owner")

// maxFileSize bounds a key file read: a key is 44 characters and a newline.
const maxFileSize = 256

// Load reads the key in path, which must be a regular file that neither
// group nor others can read or write, owned by this process's user.
func Load(path string) (Key, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscallNoFollow, 0)
	if isSymlinkRefused(err) {
		return Key{}, fmt.Errorf("key file %s: %w: a symbolic link (whoever can write its directory could point it elsewhere)", path, ErrInsecure)
	}
	if err != nil {
		return Key{}, fmt.Errorf("key file %s: %w", path, err)
	}
	defer f.Close()
	if err := checkPrivate(f, path); err != nil {
		return Key{}, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return Key{}, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return Key{}, fmt.Errorf("key file %s: more than %d bytes: not a WireGuard key", path, maxFileSize)
	}
	k, err := Parse(string(data))
	if err != nil {
		return Key{}, fmt.Errorf("key file %s: %w", path, err)
	}
	if k.IsZero() {
		return Key{}, fmt.Errorf("key file %s: the key is all zeros", path)
	}
	return k, nil
}

// checkPrivate refuses a file that is not regular, is readable or
// writable by group or others, or is owned by another user.
func checkPrivate(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("key file %s: %w: not a regular file (%s)", path, ErrInsecure, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("key file %s: %w: mode %04o lets group or others read or write it (chmod 600 %s)", path, ErrInsecure, perm, path)
	}
	if uid, ok := ownerOf(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("key file %s: %w: owned by uid %d, not by this process's uid %d", path, ErrInsecure, uid, os.Geteuid())
	}
	return nil
}

// LoadOrCreate returns the private key in path, generating and storing
// one (mode 0600, directory 0700 when it has to be created) when the file
// does not exist. created tells which happened.
func LoadOrCreate(path string) (k Key, created bool, err error) {
	k, err = Load(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return k, false, err
	}
	k, err = Generate()
	if err != nil {
		return Key{}, false, err
	}
	if err := write(path, k, false); err != nil {
		if errors.Is(err, os.ErrExist) {
			// Another process made it first: use that one.
			k, err = Load(path)
			return k, false, err
		}
		return Key{}, false, err
	}
	return k, true, nil
}

// Rotate replaces the key in path with a new one (atomically: a reader
// sees the old file or the new one) and returns it.
func Rotate(path string) (Key, error) {
	if _, err := Load(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Key{}, fmt.Errorf("rotate: %w", err)
	}
	k, err := Generate()
	if err != nil {
		return Key{}, err
	}
	if err := write(path, k, true); err != nil {
		return Key{}, err
	}
	return k, nil
}

// write stores k in path through a private temporary file in the same
// directory, synced before it is renamed (replace) or linked (no replace:
// an existing file is kept and os.ErrExist returned).
func write(path string, k Key, replace bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("key file %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("key file %s: %w", path, err)
	}
	name := tmp.Name()
	defer os.Remove(name)
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("key file %s: %w", path, err)
	}
	if _, err := tmp.WriteString(k.String() + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("key file %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("key file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("key file %s: %w", path, err)
	}
	if replace {
		err = os.Rename(name, path)
	} else {
		err = os.Link(name, path)
	}
	if err != nil {
		return fmt.Errorf("key file %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
