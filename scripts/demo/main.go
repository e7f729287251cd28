// Command demo is `make demo`: three hosts as network namespaces on a
// bridged underlay, weftd on each (the first runs the embedded etcd), two
// containers per host attached through the weft CNI plugin with the real
// cnitool, then a ping matrix and an iperf3 run between hosts. Everything
// it creates is removed on exit, on error and on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding weftd, weftctl and the weft CNI plugin")
	hosts := flag.Int("hosts", 3, "number of hosts")
	perHost := flag.Int("containers", 2, "containers per host")
	iperfSeconds := flag.Int("iperf-seconds", 5, "length of the iperf3 run")
	keep := flag.Bool("keep", false, "keep everything running until Ctrl-C (explore with ip netns)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	binDir, err := filepath.Abs(*bin)
	if err != nil {
		fail(err)
	}
	d := &demo{bin: binDir, hosts: *hosts, perHost: *perHost, iperfSeconds: *iperfSeconds}
	err = d.run(ctx, *keep)
	if cerr := d.cleanup(); cerr != nil {
		fmt.Fprintf(os.Stderr, "demo: cleanup: %v\n", cerr)
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "demo: interrupted; everything removed")
			os.Exit(130)
		}
		fail(err)
	}
	fmt.Println("demo: success; all namespaces, links and processes removed")
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "demo: FAILED: %v\n", err)
	os.Exit(1)
}

func step(format string, args ...any) {
	fmt.Printf("==> %s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
