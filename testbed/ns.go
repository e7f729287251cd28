// Package testbed turns network namespaces into hosts: named namespaces
// under /var/run/netns, veth or bridged underlays between them, background
// processes inside them, and a cleanup that removes all of it. It never
// touches the root namespace's addresses, routes or firewall.
package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// NetnsDir is where `ip netns` keeps its named namespaces.
const NetnsDir = "/var/run/netns"

// NS is a named network namespace under /var/run/netns.
type NS struct {
	Name string
}

// NewNS creates a namespace named prefix plus a random suffix and brings
// its loopback up.
func NewNS(prefix string) (*NS, error) {
	for attempt := 0; attempt < 10; attempt++ {
		suffix, err := randomSuffix(3)
		if err != nil {
			return nil, err
		}
		name := prefix + suffix
		if _, err := os.Stat(filepath.Join(NetnsDir, name)); err == nil {
			continue
		}
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("testbed: ip netns add %s: %w: %s", name, err, strings.TrimSpace(string(out)))
		}
		ns := &NS{Name: name}
		if _, err := ns.Run(context.Background(), "ip", "link", "set", "lo", "up"); err != nil {
			ns.Delete()
			return nil, fmt.Errorf("testbed: %s: lo up: %w", name, err)
		}
		return ns, nil
	}
	return nil, fmt.Errorf("testbed: no free namespace name with prefix %q", prefix)
}

func randomSuffix(bytes int) (string, error) {
	b := make([]byte, bytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("testbed: random name: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Path is the namespace's bind mount, usable with setns(2) and CNI.
func (n *NS) Path() string { return filepath.Join(NetnsDir, n.Name) }

// DialContext connects from inside the namespace (a socket keeps the
// namespace it was made in), so a client in the test process reaches what
// only the namespace sees, e.g. a daemon's 127.0.0.1 or a host's etcd. It
// fits http.Transport.DialContext; grpc.WithContextDialer wants network
// "tcp" fixed.
func (n *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := ns.WithNetNSPath(n.Path(), func(ns.NetNS) error {
		var err error
		conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: dial %s %s: %w", n.Name, network, addr, err)
	}
	return conn, nil
}

// Command prepares `ip netns exec <name> name args...`.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	full := append([]string{"netns", "exec", n.Name, name}, args...)
	return exec.CommandContext(ctx, "ip", full...)
}

// Run runs a command inside the namespace and returns its combined output;
// the error includes the output.
func (n *NS) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s %s: %w: %s", n.Name, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Pids lists the processes whose network namespace is this one.
func (n *NS) Pids() ([]int, error) {
	out, err := exec.Command("ip", "netns", "pids", n.Name).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("testbed: ip netns pids %s: %w: %s", n.Name, err, strings.TrimSpace(string(out)))
	}
	var pids []int
	for _, field := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(field)
		if err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Delete kills every process still inside the namespace and deletes it
// (its links go with it). Deleting a namespace that is already gone is not
// an error.
func (n *NS) Delete() error {
	if _, err := os.Stat(n.Path()); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := n.killAll(); err != nil {
		return err
	}
	if out, err := exec.Command("ip", "netns", "delete", n.Name).CombinedOutput(); err != nil {
		if _, serr := os.Stat(n.Path()); errors.Is(serr, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("testbed: ip netns delete %s: %w: %s", n.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// killAll sends SIGKILL to the namespace's processes until two scans in a
// row find none (a process may fork, or still be entering through `ip
// netns exec`, while being killed), for at most five seconds.
func (n *NS) killAll() error {
	deadline := time.Now().Add(5 * time.Second)
	empty := 0
	for {
		pids, err := n.Pids()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			empty++
			if empty == 2 {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		empty = 0
		if time.Now().After(deadline) {
			return fmt.Errorf("testbed: %s: processes %v survive SIGKILL", n.Name, pids)
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
