package keyfile

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/curve25519"
)

func TestLoadOrCreateKeepsTheKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "wireguard.key")
	k1, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreate: created=%v err=%v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("created directory mode %04o, want 0700", di.Mode().Perm())
	}
	// A restart reads the same key: the same PublicKey in the lease.
	k2, created, err := LoadOrCreate(path)
	if err != nil || created || k2 != k1 {
		t.Fatalf("second LoadOrCreate: same=%v created=%v err=%v", k2 == k1, created, err)
	}
	data, _ := os.ReadFile(path)
	if string(data) != k1.String()+"\n" {
		t.Errorf("file holds %q, want the base64 key and a newline", data)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key (no temporary files)", len(entries))
	}
}

func TestGenerateAndPublic(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
		t.Errorf("private key %x not clamped", k)
	}
	want, _ := curve25519.X25519(k[:], curve25519.Basepoint)
	if p := k.Public(); string(p[:]) != string(want) {
		t.Errorf("Public = %x, want %x", p, want)
	}
	// RFC 7748 section 6.1: Alice's private and public keys.
	priv, _ := base64.StdEncoding.DecodeString("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=")
	pub, _ := base64.StdEncoding.DecodeString("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=")
	var a Key
	copy(a[:], priv)
	if p := a.Public(); string(p[:]) != string(pub) {
		t.Errorf("RFC 7748 vector: Public = %s", p)
	}
	k2, _ := Generate()
	if k2 == k {
		t.Error("two generated keys are equal")
	}
}

func TestLoadRefusesLooseFiles(t *testing.T) {
	dir := t.TempDir()
	k, _ := Generate()
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644, 0o620, 0o602} {
		path := filepath.Join(dir, "k"+mode.String())
		if err := os.WriteFile(path, []byte(k.String()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path); !errors.Is(err, ErrInsecure) {
			t.Errorf("mode %04o: Load err = %v, want ErrInsecure", mode, err)
		}
		if _, _, err := LoadOrCreate(path); !errors.Is(err, ErrInsecure) {
			t.Errorf("mode %04o: LoadOrCreate err = %v, want ErrInsecure (never a new key over it)", mode, err)
		}
		if _, err := Rotate(path); !errors.Is(err, ErrInsecure) {
			t.Errorf("mode %04o: Rotate err = %v, want ErrInsecure", mode, err)
		}
	}
	// A symbolic link, even to a private file, is refused.
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte(k.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(link); !errors.Is(err, ErrInsecure) {
		t.Errorf("Load(symbolic link) err = %v, want ErrInsecure", err)
	}
	// A directory is no key file.
	if _, err := Load(dir); !errors.Is(err, ErrInsecure) {
		t.Errorf("Load(directory) err = %v, want ErrInsecure", err)
	}
}

func TestLoadRefusesJunk(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"empty":      "",
		"short":      "AAAA\n",
		"not base64": strings.Repeat("!", 44),
		"33 bytes":   base64.StdEncoding.EncodeToString(make([]byte, 33)),
		"zero key":   base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"huge":       strings.Repeat("A", 1<<20),
		"two keys":   "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nyAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if k, err := Load(path); err == nil {
			t.Errorf("%s: Load = %s, want an error", name, k)
		}
		// LoadOrCreate does not overwrite a file it cannot read.
		if _, _, err := LoadOrCreate(path); err == nil {
			t.Errorf("%s: LoadOrCreate succeeded", name)
		}
		if got, _ := os.ReadFile(path); string(got) != content {
			t.Errorf("%s: file changed", name)
		}
	}
	// `wg genkey` output (with its newline) is accepted.
	path := filepath.Join(dir, "wg")
	if err := os.WriteFile(path, []byte("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := Load(path); err != nil || k.String() != "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=" {
		t.Errorf("Load(wg genkey output) = %s, %v", k, err)
	}
}

func TestRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wireguard.key")
	old, _, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := Rotate(path)
	if err != nil {
		t.Fatal(err)
	}
	if k == old {
		t.Fatal("Rotate returned the old key")
	}
	got, err := Load(path)
	if err != nil || got != k {
		t.Fatalf("after Rotate: Load = %v, %v", got == k, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("rotated file mode %04o", fi.Mode().Perm())
	}
}
