//go:build !unit

// Package scripts holds the tests of scripts/deps.sh (make deps).
package scripts

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// fakeApt is a directory to put first on PATH: a dynamically linked
// "busybox" (as Debian's busybox package has it) and an "apt-get" that
// logs its arguments with the time and, when fixes is set, installs
// busybox-static by putting a static "busybox" in place.
func fakeApt(t *testing.T, fixes bool) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("deps.sh needs root (run the tests as root, as make test does)")
	}
	dir := t.TempDir()
	writeELF(t, filepath.Join(dir, "busybox"), "/lib64/ld-linux-x86-64.so.2")
	writeELF(t, filepath.Join(dir, "static-busybox"), "")
	script := "#!/bin/sh\necho \"$(date +%s.%N) $*\" >> " + filepath.Join(dir, "apt.log") + "\n"
	if fixes {
		script += "case \"$*\" in *install*busybox-static*) cp " + filepath.Join(dir, "static-busybox") + " " +
			filepath.Join(dir, "busybox") + ";; esac\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "apt-get"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// deps runs scripts/deps.sh with fake first on PATH and extra environment.
func deps(t *testing.T, fake string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", "scripts/deps.sh")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), append(env, "PATH="+fake+":"+os.Getenv("PATH"))...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func aptLog(t *testing.T, fake string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fake, "apt.log"))
	if err != nil {
		t.Fatalf("apt-get was not run: %v", err)
	}
	return string(data)
}

// Issue 24 item 1: deps.sh took any busybox; Debian's dynamically linked
// one made every podman test container exit at once.
func TestDepsReplacesDynamicBusybox(t *testing.T) {
	fake := fakeApt(t, true)
	out, err := deps(t, fake, "DEPS_APT_LOCKS="+filepath.Join(fake, "no-such-lock"))
	if err != nil {
		t.Fatalf("deps.sh: %v\n%s", err, out)
	}
	if !strings.Contains(out, fake+"/busybox is dynamically linked (Debian's busybox); installing busybox-static") {
		t.Errorf("deps.sh did not say why it installs busybox-static:\n%s", out)
	}
	if log := aptLog(t, fake); !strings.Contains(log, "-o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends") ||
		!strings.Contains(log, "busybox-static") {
		t.Errorf("apt-get calls:\n%s", log)
	}

	// An install that leaves a dynamic busybox first on PATH fails, saying so.
	fake = fakeApt(t, false)
	out, err = deps(t, fake, "DEPS_APT_LOCKS="+filepath.Join(fake, "no-such-lock"))
	if err == nil || !strings.Contains(out, "is still dynamically linked; the podman tests need a static busybox") {
		t.Errorf("deps.sh with a busybox it cannot replace: %v\n%s", err, out)
	}
}

// Issue 24 item 3: deps.sh failed at once (apt-get's exit 100) while
// another apt held the dpkg lock. It now waits; the lock here is a file of
// the test's, held with fcntl as apt and dpkg hold theirs.
func TestDepsWaitsForTheAptLock(t *testing.T) {
	fake := fakeApt(t, true)
	lockPath := filepath.Join(fake, "lock-frontend")
	f, err := os.Create(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &unix.Flock_t{Type: unix.F_WRLCK}); err != nil {
		t.Fatal(err)
	}
	// The lock is released once deps.sh says it waits (however long a
	// loaded machine takes it to get there), a second later.
	cmd := exec.Command("bash", "scripts/deps.sh")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "DEPS_APT_LOCKS="+lockPath, "PATH="+fake+":"+os.Getenv("PATH"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var output strings.Builder
	var released float64
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		output.WriteString(sc.Text() + "\n")
		if released == 0 && strings.Contains(sc.Text(), "another apt/dpkg holds "+lockPath+"; waiting for it (up to 600s)") {
			time.Sleep(time.Second)
			released = float64(time.Now().UnixNano()) / 1e9
			if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &unix.Flock_t{Type: unix.F_UNLCK}); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	out := output.String()
	if err != nil {
		t.Fatalf("deps.sh: %v\n%s", err, out)
	}
	if released == 0 {
		t.Fatalf("deps.sh did not say it waits:\n%s", out)
	}
	first, _, _ := strings.Cut(aptLog(t, fake), " ")
	if at, err := strconv.ParseFloat(first, 64); err != nil || at < released {
		t.Errorf("apt-get ran at %s, before the lock was released at %.3f", first, released)
	}

	// It gives up after DEPS_LOCK_TIMEOUT seconds, saying so.
	fake = fakeApt(t, true)
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &unix.Flock_t{Type: unix.F_WRLCK}); err != nil {
		t.Fatal(err)
	}
	out, err = deps(t, fake, "DEPS_APT_LOCKS="+lockPath, "DEPS_LOCK_TIMEOUT=1")
	if err == nil || !strings.Contains(out, "gave up after 1s waiting for another apt/dpkg to release "+lockPath) {
		t.Errorf("deps.sh with the lock held throughout: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(fake, "apt.log")); err == nil {
		t.Error("apt-get ran while the lock was held")
	}
}
