package cluster

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeELF writes a minimal ELF64 executable: a PT_LOAD and, when interp
// is set, a PT_INTERP naming it (what makes it dynamically linked).
func writeELF(t *testing.T, path, interp string) {
	t.Helper()
	progs := []elf.Prog64{{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X)}}
	if interp != "" {
		progs = append(progs, elf.Prog64{Type: uint32(elf.PT_INTERP), Off: 64 + 56*2, Filesz: uint64(len(interp) + 1)})
	}
	var b bytes.Buffer
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: 1,
		Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: uint16(len(progs))}
	copy(h.Ident[:], []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	if err := binary.Write(&b, binary.LittleEndian, h); err != nil {
		t.Fatal(err)
	}
	if err := binary.Write(&b, binary.LittleEndian, progs); err != nil {
		t.Fatal(err)
	}
	if interp != "" {
		b.WriteString(interp + "\x00")
	}
	if err := os.WriteFile(path, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
}

// Issue 24 item 1: with Debian's dynamically linked busybox the podman
// tests failed with "container c1 has no address on weft", pointing at the
// network; they now say the busybox is the problem and what to install.
func TestPodmanNeedsStaticBusybox(t *testing.T) {
	dir := t.TempDir()
	static, dynamic := filepath.Join(dir, "static"), filepath.Join(dir, "dynamic")
	writeELF(t, static, "")
	writeELF(t, dynamic, "/lib64/ld-linux-x86-64.so.2")
	if err := checkStatic(static); err != nil {
		t.Errorf("a static executable: %v", err)
	}
	for _, path := range []string{dynamic, "/bin/sh"} { // Debian's /bin/sh is dynamically linked
		err := checkStatic(path)
		if err == nil || !strings.Contains(err.Error(), "dynamically linked (interpreter /lib") ||
			!strings.Contains(err.Error(), "busybox-static") {
			t.Errorf("%s: %v, want it named dynamically linked and busybox-static as the cure", path, err)
		}
	}
	if err := checkStatic(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing busybox: no error")
	}
}
