package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test run weftctl's real main in a child process.
func TestMain(m *testing.M) {
	if os.Getenv("WEFTCTL_TEST_MAIN") == "1" {
		os.Args = append([]string{"weftctl"}, os.Args[1:]...)
		main()
		return
	}
	os.Exit(m.Run())
}

// TestSIGTERMEndsBlockedApply: `policy apply -f` of a FIFO nobody writes
// blocks in open(2), where the signal context cannot reach; weftctl
// caught SIGTERM and ran on for good (found by an attack: 10 minutes,
// killed by PID). It must end within its grace after the signal.
func TestSIGTERMEndsBlockedApply(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "manifests")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	cmd := exec.Command(os.Args[0], "--etcd-endpoints", "http://127.0.0.1:1", "policy", "apply", "-f", fifo)
	cmd.Env = append(os.Environ(), "WEFTCTL_TEST_MAIN=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("weftctl exited 0 after SIGTERM during a blocked read; want non-zero")
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("weftctl still running 20 s after SIGTERM while blocked opening a FIFO")
	}
}
