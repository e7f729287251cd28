package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrWaitTimeout is returned by Proc.Wait when the process is still running.
var ErrWaitTimeout = errors.New("process still running")

// Proc is a background process inside a namespace, started by Bed.Start.
// Its stdout and stderr go to a log file.
type Proc struct {
	Name    string
	Pid     int
	LogPath string
	done    chan struct{}
	err     error // set before done is closed
}

// Start runs name args inside h's namespace in the background, with its
// output appended to logPath (a restarted daemon keeps its history). The
// bed stops it on Close. It runs in its own process group and is killed if
// the caller dies.
func (b *Bed) Start(h *Host, logPath string, name string, args ...string) (*Proc, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, errors.New("testbed: Start on a closed bed")
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, fmt.Errorf("testbed: log dir: %w", err)
	}
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("testbed: log file: %w", err)
	}
	// Not CommandContext: the process's life is bound to the bed.
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS.Name, name}, args...)...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("testbed: %s: start %s %s: %w", h.NS.Name, name, strings.Join(args, " "), err)
	}
	p := &Proc{Name: name, Pid: cmd.Process.Pid, LogPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	b.mu.Lock()
	b.procs = append(b.procs, p)
	b.mu.Unlock()
	return p, nil
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error {
	if p.Exited() {
		return fmt.Errorf("%s (pid %d): already exited", p.Name, p.Pid)
	}
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("%s: unsupported signal %v", p.Name, sig)
	}
	if err := syscall.Kill(p.Pid, s); err != nil {
		return fmt.Errorf("%s (pid %d): signal %v: %w", p.Name, p.Pid, sig, err)
	}
	return nil
}

// Wait waits up to timeout for the process to exit. It returns nil for a
// zero exit status, the exit error otherwise, and an error wrapping
// ErrWaitTimeout when the process is still running.
func (p *Proc) Wait(timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s (pid %d): %w", p.Name, p.Pid, p.err)
		}
		return nil
	case <-timer.C:
		return fmt.Errorf("%s (pid %d) after %v: %w", p.Name, p.Pid, timeout, ErrWaitTimeout)
	}
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL to the process group and waits for the process.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	syscall.Kill(-p.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// stop asks the process to terminate, then kills it after a grace period.
func (p *Proc) stop() {
	if p.Exited() {
		return
	}
	syscall.Kill(-p.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
	}
	p.Kill()
}
