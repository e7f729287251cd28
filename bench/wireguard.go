package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// Path names of the encrypted paths.
const (
	pathWeftWireGuard = "weft-wireguard"
	pathWireGuardGo   = "wireguard-go"
)

// weftWireGuardNetworkConfig is the weft wireguard path's network config
// (the acceptance config), dual-stack: one device, allowed IPs of
// both families, the tunnel over the IPv4 underlay.
const weftWireGuardNetworkConfig = `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","Backend":{"Type":"wireguard"}}`

// weftWireGuardPath runs weftd with the wireguard backend on a bed of its
// own (one weftd per namespace); the path is between the devices'
// addresses. The cluster and bed are returned, even with an error, for the
// caller to stop and remove.
func weftWireGuardPath(ctx context.Context, binDir, stateDir string) (*path, *cluster.Cluster, *testbed.Bed, error) {
	bed, err := testbed.NewBed("wbw", 2, testbed.Options{})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("weft wireguard: %w", err)
	}
	c, err := cluster.New(bed, cluster.Options{Bin: binDir, DaemonOnly: true, WorkDir: filepath.Join(stateDir, "wireguard"), NetworkConfig: weftWireGuardNetworkConfig})
	if err != nil {
		return nil, nil, bed, fmt.Errorf("weft wireguard: %w", err)
	}
	if err := c.Start(ctx); err != nil {
		return nil, c, bed, fmt.Errorf("weft wireguard: %w", err)
	}
	addrs, addrs6, err := nodeAddrs(c)
	if err != nil {
		return nil, c, bed, fmt.Errorf("weft wireguard: %w", err)
	}
	return &path{Name: pathWeftWireGuard, A: addrs[0], B: addrs[1], A6: addrs6[0], B6: addrs6[1], bed: bed,
		Note: fmt.Sprintf("weftd with the wireguard backend (embedded wireguard-go, UDP 51820, MTU underlay-60, dual-stack network) on a veth pair of its own (%s <-> %s); host-to-host between the device addresses %s <-> %s (IPv6 %s <-> %s)",
			bed.Hosts[0].IP, bed.Hosts[1].IP, addrs[0], addrs[1], addrs6[0], addrs6[1])}, c, bed, nil
}

// wireGuardGo is the standalone wireguard-go path: the daemon of the
// module weft embeds (bin/wireguard-go, same version), with its defaults
// (MTU 1420, its bind and TUN), configured with Debian's wg.
type wireGuardGo struct {
	bed   *testbed.Bed
	procs []*exec.Cmd
	names []string
}

// wireGuardGoPath starts wireguard-go on both hosts of a bed of its own.
// The returned value (even with an error) stops it.
func wireGuardGoPath(ctx context.Context, binDir, logDir string) (*path, *wireGuardGo, error) {
	w := &wireGuardGo{}
	bed, err := testbed.NewBed("wbg", 2, testbed.Options{})
	if err != nil {
		return nil, w, fmt.Errorf("wireguard-go: %w", err)
	}
	w.bed = bed
	bin := filepath.Join(binDir, "wireguard-go")
	if _, err := os.Stat(bin); err != nil {
		return nil, w, fmt.Errorf("wireguard-go: %s not built (make build): %w", bin, err)
	}
	addrs := [2]netip.Addr{netip.MustParseAddr("10.98.0.1"), netip.MustParseAddr("10.98.0.2")}
	addrs6 := [2]netip.Addr{netip.MustParseAddr("fd98::1"), netip.MustParseAddr("fd98::2")}
	var privs, pubs [2]string
	for i, h := range bed.Hosts[:2] {
		var r [4]byte
		if _, err := rand.Read(r[:]); err != nil {
			return nil, w, err
		}
		name := "wgb" + hex.EncodeToString(r[:])
		w.names = append(w.names, name)
		log, err := os.Create(filepath.Join(logDir, fmt.Sprintf("wireguard-go-host%d.log", i+1)))
		if err != nil {
			return nil, w, err
		}
		cmd := h.NS.Command(context.Background(), bin, "-f", name)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			log.Close()
			return nil, w, fmt.Errorf("wireguard-go: host %d: %w", i+1, err)
		}
		w.procs = append(w.procs, cmd)
		sock := "/var/run/wireguard/" + name + ".sock"
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = testbed.WaitFor(wctx, 50*time.Millisecond, func() error { _, err := os.Stat(sock); return err })
		cancel()
		if err != nil {
			return nil, w, fmt.Errorf("wireguard-go: host %d: no UAPI socket: %w", i+1, err)
		}
		out, err := exec.CommandContext(ctx, "wg", "genkey").Output()
		if err != nil {
			return nil, w, fmt.Errorf("wg genkey: %w", err)
		}
		privs[i] = strings.TrimSpace(string(out))
		pc := exec.CommandContext(ctx, "wg", "pubkey")
		pc.Stdin = strings.NewReader(privs[i] + "\n")
		out, err = pc.Output()
		if err != nil {
			return nil, w, fmt.Errorf("wg pubkey: %w", err)
		}
		pubs[i] = strings.TrimSpace(string(out))
	}
	dir, err := os.MkdirTemp("", "wg-bench-")
	if err != nil {
		return nil, w, err
	}
	defer os.RemoveAll(dir)
	for i, h := range bed.Hosts[:2] {
		peer := bed.Hosts[1-i]
		conf := filepath.Join(dir, fmt.Sprintf("host%d.conf", i+1))
		text := fmt.Sprintf("[Interface]\nPrivateKey = %s\nListenPort = 51820\n\n[Peer]\nPublicKey = %s\nEndpoint = %s:51820\nAllowedIPs = %s/32, %s/128\n",
			privs[i], pubs[1-i], peer.IP, addrs[1-i], addrs6[1-i])
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return nil, w, err
		}
		for _, args := range [][]string{
			{"wg", "setconf", w.names[i], conf},
			{"ip", "addr", "add", netip.PrefixFrom(addrs[i], 24).String(), "dev", w.names[i]},
			{"ip", "addr", "add", netip.PrefixFrom(addrs6[i], 64).String(), "dev", w.names[i], "nodad"},
			{"ip", "link", "set", w.names[i], "up"},
		} {
			if out, err := h.NS.Run(ctx, args[0], args[1:]...); err != nil {
				return nil, w, fmt.Errorf("wireguard-go: host %d: %s: %w\n%s", i+1, strings.Join(args, " "), err, out)
			}
		}
	}
	return &path{Name: pathWireGuardGo, A: addrs[0], B: addrs[1], A6: addrs6[0], B6: addrs6[1], bed: bed,
		Note: fmt.Sprintf("standalone wireguard-go (the module weft embeds, same version, its defaults: MTU 1420) configured with wg (allowed IPs of both families) on a veth pair of its own (%s <-> %s), %s <-> %s (IPv6 %s <-> %s)",
			bed.Hosts[0].IP, bed.Hosts[1].IP, addrs[0], addrs[1], addrs6[0], addrs6[1])}, w, nil
}

// close stops the daemons and removes the bed.
func (w *wireGuardGo) close() error {
	var errs []error
	for _, p := range w.procs {
		_ = p.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	if w.bed != nil {
		if err := w.bed.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cleanup (wireguard-go bed): %w", err))
		}
	}
	return errors.Join(errs...)
}
