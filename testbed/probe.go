package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// EchoServer answers TCP and UDP probes in a namespace: each TCP connection
// gets its first read written back, each UDP datagram is sent back.
type EchoServer struct {
	closers []io.Closer
	wg      sync.WaitGroup
}

// ServeEcho listens on addr at each port, TCP and UDP, inside the namespace
// at nsPath (sockets keep their namespace; serving runs on ordinary
// goroutines).
func ServeEcho(nsPath string, addr netip.Addr, ports []uint16) (*EchoServer, error) {
	s := &EchoServer{}
	err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		for _, port := range ports {
			ap := netip.AddrPortFrom(addr, port)
			ln, err := net.Listen("tcp", ap.String())
			if err != nil {
				return err
			}
			s.closers = append(s.closers, ln)
			pc, err := net.ListenPacket("udp", ap.String())
			if err != nil {
				return err
			}
			s.closers = append(s.closers, pc)
			s.wg.Add(2)
			go s.serveTCP(ln)
			go s.serveUDP(pc)
		}
		return nil
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("testbed: echo server in %s: %w", nsPath, err)
	}
	return s, nil
}

func (s *EchoServer) serveTCP(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 256)
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			c.Write(buf[:n])
		}()
	}
}

func (s *EchoServer) serveUDP(pc net.PacketConn) {
	defer s.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(buf[:n], from)
	}
}

// Close stops serving.
func (s *EchoServer) Close() error {
	for _, c := range s.closers {
		c.Close()
	}
	s.wg.Wait()
	return nil
}

// ErrNoEcho is returned by Probe when nothing came back in time.
var ErrNoEcho = errors.New("no echo")

// Probe sends a random token from the namespace at nsPath to dst over
// network ("tcp" or "udp") and waits up to timeout for the same token to
// come back: nil means the path works both ways. UDP is tried three times
// within the timeout (a lost datagram is not a verdict). The local port is
// the kernel's choice: a UDP probe may then reuse the address and port
// pair of an earlier probe whose conntrack entry still lives (30 s after
// its last datagram), and so continue that flow instead of starting a new
// one; use ProbeFrom where that matters.
func Probe(nsPath, network string, dst netip.AddrPort, timeout time.Duration) error {
	return ProbeFrom(nsPath, network, 0, dst, timeout)
}

// ProbeFrom is Probe sent from localPort (0: the kernel chooses). A local
// port not used before towards dst makes a new flow for conntrack.
func ProbeFrom(nsPath, network string, localPort uint16, dst netip.AddrPort, timeout time.Duration) error {
	token := make([]byte, 16)
	rand.Read(token)
	var conn net.Conn
	deadline := time.Now().Add(timeout)
	err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		var d net.Dialer
		if localPort != 0 {
			switch network {
			case "udp":
				d.LocalAddr = &net.UDPAddr{Port: int(localPort)}
			case "tcp":
				d.LocalAddr = &net.TCPAddr{Port: int(localPort)}
			}
		}
		c, err := d.DialContext(ctx, network, dst.String())
		conn = c
		return err
	})
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return ErrNoEcho
		}
		return fmt.Errorf("dial %s %s: %w", network, dst, err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	tries := 1
	if network == "udp" {
		tries = 3
	}
	buf := make([]byte, 64)
	for i := 0; i < tries; i++ {
		if network == "udp" {
			conn.SetReadDeadline(time.Now().Add(timeout / time.Duration(tries)))
		}
		if _, err := conn.Write(token); err != nil {
			if network == "udp" {
				continue // ICMP error from an earlier try; try again
			}
			return fmt.Errorf("write %s %s: %w", network, dst, err)
		}
		n, err := conn.Read(buf)
		if err == nil && bytes.Equal(buf[:n], token) {
			return nil
		}
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) && network == "tcp" {
			return fmt.Errorf("read %s %s: %w", network, dst, err)
		}
	}
	return ErrNoEcho
}
