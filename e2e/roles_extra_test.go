//go:build !unit

package e2e

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/weftnet/weft/subnet/embedded"
)

// etcdRole DIR CLIENTURL: run a real single-member etcd (the same embedded
// server weftd uses) until SIGTERM or SIGINT. It prints "ready" once it
// serves clients. Faults tests run it in a namespace of its own so that
// they can stop, freeze (SIGSTOP) or cut it off.
func etcdRole(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: etcd DIR CLIENTURL")
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	emb, err := embedded.Start(embedded.Options{
		Dir:           args[0],
		ClientURL:     args[1],
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, nil)),
		UnsafeNoFsync: true,
	})
	if err != nil {
		return err
	}
	defer emb.Close()
	fmt.Println("ready")
	select {
	case <-stop:
		return nil
	case err := <-emb.Err():
		return fmt.Errorf("etcd failed: %w", err)
	}
}

// udpCount ADDR SECONDS: count the UDP datagrams that arrive on ADDR for
// SECONDS and print "received=N". It prints "listening" first.
func udpCount(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: udpcount ADDR SECONDS")
	}
	d, err := time.ParseDuration(args[1] + "s")
	if err != nil {
		return err
	}
	conn, err := net.ListenPacket("udp", args[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Println("listening")
	deadline := time.Now().Add(d)
	if err := conn.SetReadDeadline(deadline); err != nil {
		return err
	}
	buf := make([]byte, 65536)
	n := 0
	for {
		if _, _, err := conn.ReadFrom(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			return err
		}
		n++
	}
	fmt.Printf("received=%d\n", n)
	return nil
}

// udpBlast DST COUNT HEXPAYLOAD...: send COUNT datagrams cycling through
// the payloads to DST as fast as possible; a datagram the
// local stack refuses (ENOBUFS, ECONNREFUSED after an ICMP error) is sent
// again, so exactly COUNT datagrams leave this host. It prints
// "sent=COUNT retries=N".
func udpBlast(args []string) error {
	count, payloads, err := floodArgs(args)
	if err != nil {
		return err
	}
	conn, err := net.Dial("udp", args[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	retries := 0
	for i := 0; i < count; i++ {
		for {
			if _, err := conn.Write(payloads[i%len(payloads)]); err == nil {
				break
			}
			retries++
			if retries > 10*count {
				return fmt.Errorf("gave up after %d refused sends", retries)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	fmt.Printf("sent=%d retries=%d\n", count, retries)
	return nil
}

// rawSend COUNT HEXPACKET...: send each IPv4 packet (header included, its
// source possibly forged) COUNT times through a raw socket, in order (all
// packets, COUNT rounds); the kernel routes each by its destination. It
// prints "sent=N", the number of packets sent.
func rawSend(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: rawsend COUNT HEXPACKET...")
	}
	count, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	var pkts [][]byte
	for _, a := range args[1:] {
		pkt, err := hex.DecodeString(a)
		if err != nil || len(pkt) < 20 {
			return fmt.Errorf("packet %q: want hex of an IPv4 packet", a)
		}
		pkts = append(pkts, pkt)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	defer syscall.Close(fd)
	sent := 0
	for i := 0; i < count; i++ {
		for _, pkt := range pkts {
			dst := &syscall.SockaddrInet4{Addr: [4]byte(pkt[16:20])}
			if err := syscall.Sendto(fd, pkt, 0, dst); err != nil {
				return fmt.Errorf("send: %w", err)
			}
			sent++
		}
	}
	fmt.Printf("sent=%d\n", sent)
	return nil
}

// rawFlood PPS SECONDS HEXPACKET...: send the raw IPv4 packets in turn at
// about PPS packets a second for SECONDS (paced in bursts every 10 ms); it
// prints "sent=N".
func rawFlood(args []string) error {
	if len(args) < 3 {
		return errors.New("usage: rawflood PPS SECONDS HEXPACKET...")
	}
	pps, err := strconv.Atoi(args[0])
	if err != nil || pps <= 0 {
		return fmt.Errorf("PPS %q", args[0])
	}
	secs, err := strconv.ParseFloat(args[1], 64)
	if err != nil || secs <= 0 {
		return fmt.Errorf("SECONDS %q", args[1])
	}
	var pkts [][]byte
	for _, a := range args[2:] {
		pkt, err := hex.DecodeString(a)
		if err != nil || len(pkt) < 20 {
			return fmt.Errorf("packet %q: want hex of an IPv4 packet", a)
		}
		pkts = append(pkts, pkt)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	defer syscall.Close(fd)
	const tick = 10 * time.Millisecond
	start := time.Now()
	end := start.Add(time.Duration(secs * float64(time.Second)))
	sent := 0
	for now := start; now.Before(end); now = time.Now() {
		due := int(float64(pps) * now.Sub(start).Seconds())
		for ; sent < due; sent++ {
			pkt := pkts[sent%len(pkts)]
			// ENOBUFS under a flood is the flood's business: go on.
			_ = syscall.Sendto(fd, pkt, 0, &syscall.SockaddrInet4{Addr: [4]byte(pkt[16:20])})
		}
		time.Sleep(tick)
	}
	fmt.Printf("sent=%d\n", sent)
	return nil
}

// arpSend IFACE SENDERIP TARGETIP COUNT: broadcast COUNT ARP requests on
// IFACE from its own MAC address claiming SENDERIP (possibly another's:
// ARP spoofing) and asking for TARGETIP, 10 ms apart. It prints "sent=COUNT".
func arpSend(args []string) error {
	if len(args) != 4 {
		return errors.New("usage: arpsend IFACE SENDERIP TARGETIP COUNT")
	}
	ifc, err := net.InterfaceByName(args[0])
	if err != nil {
		return err
	}
	sender, target := net.ParseIP(args[1]).To4(), net.ParseIP(args[2]).To4()
	if sender == nil || target == nil || len(ifc.HardwareAddr) != 6 {
		return fmt.Errorf("arpsend: want IPv4 addresses and an Ethernet interface, got %q %q %v", args[1], args[2], ifc.HardwareAddr)
	}
	count, err := strconv.Atoi(args[3])
	if err != nil {
		return err
	}
	const ethPARP = 0x0806
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(ethPARP)))
	if err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	defer syscall.Close(fd)
	frame := make([]byte, 0, 42)
	frame = append(frame, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	frame = append(frame, ifc.HardwareAddr...)
	frame = append(frame, 0x08, 0x06)                   // ARP
	frame = append(frame, 0, 1, 0x08, 0x00, 6, 4, 0, 1) // Ethernet, IPv4, request
	frame = append(frame, ifc.HardwareAddr...)
	frame = append(frame, sender...)
	frame = append(frame, 0, 0, 0, 0, 0, 0)
	frame = append(frame, target...)
	to := &syscall.SockaddrLinklayer{Protocol: htons(ethPARP), Ifindex: ifc.Index, Halen: 6,
		Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	for i := 0; i < count; i++ {
		if err := syscall.Sendto(fd, frame, 0, to); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("sent=%d\n", count)
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// udpEcho ADDR SECONDS: send every UDP datagram that arrives on ADDR back
// to its sender for SECONDS, as most UDP services do: through the one
// unconnected socket, leaving the source address to the kernel (no
// IP_PKTINFO). It prints "listening" first.
func udpEcho(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: udpecho ADDR SECONDS")
	}
	d, err := time.ParseDuration(args[1] + "s")
	if err != nil {
		return err
	}
	conn, err := net.ListenPacket("udp", args[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Println("listening")
	if err := conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	buf := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return err
		}
		if _, err := conn.WriteTo(buf[:n], from); err != nil {
			return err
		}
	}
}

// udpAsk SERVER LOCAL: send a datagram to SERVER from a socket connected
// to it (bound to the address LOCAL, "-" for any), as a DNS client does,
// and wait for the answer; up to 5 tries, a second apart. A connected
// socket takes only datagrams from SERVER's address and port. It prints
// "answered from SERVER".
func udpAsk(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: udpask SERVER LOCAL")
	}
	server, err := net.ResolveUDPAddr("udp", args[0])
	if err != nil {
		return err
	}
	var local *net.UDPAddr
	if args[1] != "-" {
		if local, err = net.ResolveUDPAddr("udp", net.JoinHostPort(args[1], "0")); err != nil {
			return err
		}
	}
	conn, err := net.DialUDP("udp", local, server)
	if err != nil {
		return err
	}
	defer conn.Close()
	buf := make([]byte, 64)
	var lastErr error
	for try := 0; try < 5; try++ {
		if _, err := conn.Write([]byte("anyone?")); err != nil {
			lastErr = err // ECONNREFUSED: an ICMP error for the last try
			time.Sleep(time.Second)
			continue
		}
		if err := conn.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
			return err
		}
		if n, err := conn.Read(buf); err == nil && string(buf[:n]) == "anyone?" {
			fmt.Printf("answered from %s\n", server)
			return nil
		} else if err != nil {
			lastErr = err
		}
	}
	return fmt.Errorf("no answer from %s to %s in 5 tries (last: %v)", server, conn.LocalAddr(), lastErr)
}

// udpBroadcast DST COUNT: send COUNT small UDP datagrams to DST (a
// broadcast or multicast address and port) from a socket with SO_BROADCAST.
// It prints "sent=COUNT".
func udpBroadcast(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: udpbcast DST COUNT")
	}
	dst, err := net.ResolveUDPAddr("udp4", args[0])
	if err != nil {
		return err
	}
	count, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	conn, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	for i := 0; i < count; i++ {
		if _, err := conn.WriteToUDP([]byte("broadcast"), dst); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Printf("sent=%d\n", count)
	return nil
}
