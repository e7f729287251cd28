// Command weftctl is weft's operator CLI: it reads and writes the network
// config in etcd, lists subnet leases, and shows a daemon's status.
//
//	weftctl [flags] config get
//	weftctl [flags] config set JSON
//	weftctl [flags] leases [-o json]
//	weftctl [flags] status [--daemon-url URL] [-o json]
//	weftctl [flags] policy apply -f FILE        (NetworkPolicy YAML or JSON, one or many)
//	weftctl [flags] policy list [-n NS] [-o json]
//	weftctl [flags] policy get|delete [NS/]NAME [-n NS]
//	weftctl [flags] namespace label NAME KEY=VALUE... [KEY-]...
//	weftctl [flags] namespace list [-o json]   (labelled ones and those named by containers or policies)
//	weftctl [flags] namespace delete NAME
//	weftctl [flags] endpoints [-n NS] [-o json]
//	weftctl help [COMMAND]                      (also --help, COMMAND --help)
//	weftctl version                             (also --version)
//
// Every flag can also be set as WEFTCTL_<FLAG> in the environment
// (WEFTCTL_ETCD_ENDPOINTS, ...); the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/backend/all"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/workload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go exitAfterGrace(ctx, signalGrace, os.Stderr)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// signalGrace is how long weftctl lets a command end by itself after
// SIGINT or SIGTERM (an etcd call sees the cancelled context at once).
const signalGrace = 2 * time.Second

// exitAfterGrace ends weftctl (exit 130) grace after a signal if the
// command has not returned by then: an open or read that blocks in the
// kernel, such as `policy apply -f` of a FIFO nobody writes, never sees
// the context, and weftctl, which catches the signal, would run on.
func exitAfterGrace(ctx context.Context, grace time.Duration, stderr io.Writer) {
	<-ctx.Done()
	time.Sleep(grace)
	fmt.Fprintln(stderr, "weftctl: interrupted")
	os.Exit(130)
}

// run is the whole CLI; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, cmd, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		if len(cmd) > 0 && findCommand(cmd[0]) != nil {
			err = printCommandHelp(stdout, cmd[0])
		} else {
			err = printUsage(stdout)
		}
		if err != nil {
			fmt.Fprintf(stderr, "weftctl: %v\n", err)
			return 1
		}
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "weftctl: %v\n", err)
		fmt.Fprint(stderr, usageLine)
		return 2
	}
	switch cmd[0] {
	case "help":
		if len(cmd) > 2 {
			err = fmt.Errorf("help takes at most one command, got %q", cmd[1:])
		} else if len(cmd) == 2 {
			err = printCommandHelp(stdout, cmd[1])
		} else {
			err = printUsage(stdout)
		}
		if err != nil {
			fmt.Fprintf(stderr, "weftctl: %v\n", err)
			return 2
		}
		return 0
	case "version":
		if len(cmd) != 1 {
			fmt.Fprintf(stderr, "weftctl: version takes no arguments, got %q\n", cmd[1:])
			return 2
		}
		fmt.Fprintln(stdout, "weftctl", version)
		return 0
	}
	if err := dispatch(ctx, o, cmd, stdout); err != nil {
		fmt.Fprintf(stderr, "weftctl: %v\n", err)
		return 1
	}
	return 0
}

const usageLine = `usage: weftctl [flags] COMMAND [ARGS]
commands: config get | config set JSON | leases | status | policy apply|list|get|delete | namespace label|list|delete | endpoints | wireguard rotate-key | help [COMMAND] | version
run "weftctl help" for every command and flag
`

func dispatch(ctx context.Context, o *options, cmd []string, stdout io.Writer) error {
	switch strings.Join(cmd[:min(len(cmd), 2)], " ") {
	case "config get":
		if len(cmd) != 2 {
			return errors.New("config get takes no arguments")
		}
		return withManager(ctx, o, func(m *subnet.Manager) error { return configGet(ctx, m, stdout) })
	case "config set":
		if len(cmd) != 3 {
			return errors.New("config set takes one argument: the network config JSON (quote it)")
		}
		// Validate before touching etcd.
		cfg, err := all.Registry().ParseConfig([]byte(cmd[2]))
		if err != nil {
			return err
		}
		return withManager(ctx, o, func(m *subnet.Manager) error { return configSet(ctx, m, cfg, stdout) })
	}
	switch cmd[0] {
	case "policy":
		return policyCommand(ctx, o, cmd[1:], os.Stdin, stdout)
	case "namespace":
		return namespaceCommand(ctx, o, cmd[1:], stdout)
	case "endpoints":
		if len(cmd) != 1 {
			return fmt.Errorf("endpoints takes no arguments (use -n NAMESPACE), got %q", cmd[1:])
		}
		return endpointsCommand(ctx, o, stdout)
	case "leases":
		if len(cmd) != 1 {
			return fmt.Errorf("leases takes no arguments, got %q", cmd[1:])
		}
		return withManager(ctx, o, func(m *subnet.Manager) error { return leases(ctx, m, o.output, stdout) })
	case "status":
		if len(cmd) != 1 {
			return fmt.Errorf("status takes no arguments, got %q", cmd[1:])
		}
		return status(ctx, o.daemonURL, o.output, stdout)
	case "config":
		return errors.New("config: want \"config get\" or \"config set JSON\"")
	case "wireguard":
		if len(cmd) != 2 || cmd[1] != "rotate-key" {
			return fmt.Errorf("wireguard: want \"wireguard rotate-key\", got %q", cmd[1:])
		}
		return rotateKey(o.stateDir, stdout)
	}
	return fmt.Errorf("unknown command %q (commands: %s; see weftctl help)", strings.Join(cmd, " "), commandNames())
}

// withManager connects to etcd, runs f, and closes the client.
func withManager(ctx context.Context, o *options, f func(*subnet.Manager) error) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	copts := o.etcd
	copts.Endpoints, copts.DialTimeout = o.endpoints(), o.dialTimeout
	cli, err := subnet.Connect(ctx, copts)
	if err != nil {
		return err
	}
	defer func(c *clientv3.Client) { c.Close() }(cli)
	return f(subnet.NewManager(cli, subnet.Options{Prefix: o.prefix}))
}

func configGet(ctx context.Context, m *subnet.Manager, stdout io.Writer) error {
	cfg, err := m.GetConfig(ctx)
	if err != nil {
		return err
	}
	data, err := cfg.MarshalJSON()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", data)
	return err
}

func configSet(ctx context.Context, m *subnet.Manager, cfg *subnet.Config, stdout io.Writer) error {
	old, _ := m.GetConfig(ctx) // nil when none (or unreadable): nothing to compare
	if err := m.SetConfig(ctx, cfg); err != nil {
		return err
	}
	data, err := cfg.MarshalJSON()
	if err != nil {
		return err
	}
	// weftd reads the config once, at start: say so, or a changed
	// Backend (DirectRouting, host-gw, a port) seems to do nothing.
	_, err = fmt.Fprintf(stdout, "wrote %s: %s\n%s\n", m.ConfigKey(), data, configSetNote)
	if err == nil && old != nil && old.HasIPv6() != cfg.HasIPv6() {
		note := ipv6OnNote
		if !cfg.HasIPv6() {
			note = ipv6OffNote
		}
		_, err = fmt.Fprintln(stdout, note)
	}
	return err
}

// Notes for an operator who turns IPv6 on or off (docs/flannel.md: what
// flanneld does instead).
const (
	ipv6OnNote = "IPv6 turned on: each weftd keeps its IPv4 subnet and adds an IPv6 one when it restarts (nothing is renumbered); " +
		"until a node restarts, the restarted ones skip its IPv4-only lease (logged once, counted in weft_malformed_leases)"
	ipv6OffNote = "IPv6 turned off: each weftd keeps its IPv4 subnet and drops its IPv6 one when it restarts"
)

const configSetNote = "weftd reads the network config when it starts: restart weftd on every host (systemctl restart weftd) to use it"

// defaultTimeout bounds one command's etcd work.
const defaultTimeout = 30 * time.Second

// withStore is withManager for the workload store (policies, namespaces,
// containers), which shares the manager's client and prefix.
func withStore(ctx context.Context, o *options, f func(*workload.Store) error) error {
	return withManager(ctx, o, func(m *subnet.Manager) error { return f(workload.New(m, nil)) })
}
