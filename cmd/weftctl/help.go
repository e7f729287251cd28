package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one of weftctl's commands, as help shows it.
type command struct {
	name  string      // the first word on the command line
	forms [][2]string // usage forms and what each does
	more  string      // what `help NAME` adds
	flags []string    // the flags it reads besides the etcd ones
	etcd  bool        // it talks to etcd (the --etcd-* flags apply)
}

var commands = []command{
	{name: "config", etcd: true, forms: [][2]string{
		{"config get", "print the network config stored in etcd"},
		{"config set JSON", "check and store a network config (flannel's JSON schema)"},
	}, more: `The network config is flannel's JSON, e.g.
  weftctl config set '{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}'
A bad config is refused before anything is written. weftd reads the config
when it starts: restart weftd on every host to use a new one.`},
	{name: "leases", etcd: true, flags: []string{"o"}, forms: [][2]string{
		{"leases [-o json]", "list the nodes' subnet leases"},
	}},
	{name: "status", flags: []string{"daemon-url", "o"}, forms: [][2]string{
		{"status [--daemon-url URL] [-o json]", "show a weftd's lease, peers, readiness and counters"},
	}, more: `status asks weftd's health endpoint (--daemon-url); it exits 1 when the
daemon holds no subnet lease.`},
	{name: "policy", etcd: true, flags: []string{"f", "n", "o"}, forms: [][2]string{
		{"policy apply -f FILE", "store NetworkPolicy manifests (YAML or JSON, one or many; - reads standard input)"},
		{"policy list [-n NS] [-o json]", "list the stored NetworkPolicies"},
		{"policy get [NS/]NAME [-n NS]", "print one NetworkPolicy"},
		{"policy delete [NS/]NAME [-n NS]", "delete one NetworkPolicy"},
	}, more: `A manifest names its namespace in metadata.namespace ("default" when it
names none). weftd on every host enforces the stored policies for its
containers.`},
	{name: "namespace", etcd: true, flags: []string{"o"}, forms: [][2]string{
		{"namespace label NAME KEY=VALUE... [KEY-]...", "set (KEY=VALUE) or remove (KEY-) a namespace's labels"},
		{"namespace list [-o json]", "list namespaces: labelled ones and those named by containers or policies"},
		{"namespace delete NAME", "remove a namespace's labels"},
	}, more: `Namespace labels are what namespaceSelector in a NetworkPolicy matches.`},
	{name: "endpoints", etcd: true, flags: []string{"n", "o"}, forms: [][2]string{
		{"endpoints [-n NS] [-o json]", "list the containers the nodes publish (address, namespace, labels)"},
	}},
	{name: "wireguard", flags: []string{"state-dir"}, forms: [][2]string{
		{"wireguard rotate-key [--state-dir DIR]", "replace this node's WireGuard private key (weftd publishes the new public key; peers follow)"},
	}, more: `Run it on the node, as the user weftd runs as, with weftd's --state-dir. The
new key replaces DIR/wireguard.key atomically; the running weftd sees the
file change within 2 s, uses the new key and publishes its public key in the
node's lease, and every peer follows from the lease. Traffic continues: the
next packet between two nodes makes a new handshake with the new key.`},
	{name: "help", forms: [][2]string{
		{"help [COMMAND]", "show this help, or a command's"},
	}},
	{name: "version", forms: [][2]string{
		{"version", "print weftctl's version (also --version)"},
	}},
}

// etcdFlags are the flags every etcd command reads.
var etcdFlags = []string{"etcd-endpoints", "etcd-prefix", "etcd-cafile", "etcd-certfile", "etcd-keyfile",
	"etcd-username", "etcd-password", "etcd-dial-timeout", "timeout"}

func findCommand(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// printUsage is `weftctl help` and `weftctl --help`: every command and
// every flag.
func printUsage(w io.Writer) error {
	var b strings.Builder
	b.WriteString("weftctl is weft's operator CLI: the network config, subnet leases,\nNetworkPolicy and namespace labels in etcd, and a weftd's status.\n\n")
	b.WriteString("Usage: weftctl [flags] COMMAND [ARGS]   (flags may also follow the command)\n\nCommands:\n")
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	for _, c := range commands {
		for _, f := range c.forms {
			fmt.Fprintf(tw, "  %s\t%s\n", f[0], f[1])
		}
	}
	tw.Flush()
	b.WriteString("\nRun `weftctl help COMMAND` for more about one command.\n\n")
	b.WriteString("Flags (each can also be set as WEFTCTL_<FLAG> in the environment, e.g.\nWEFTCTL_ETCD_ENDPOINTS; the command line wins):\n")
	fs := newFlagSet(&options{}, io.Discard)
	fs.SetOutput(&b)
	fs.PrintDefaults()
	_, err := io.WriteString(w, b.String())
	return err
}

// printCommandHelp is `weftctl help NAME`.
func printCommandHelp(w io.Writer, name string) error {
	c := findCommand(name)
	if c == nil {
		return fmt.Errorf("help: unknown command %q (commands: %s)", name, commandNames())
	}
	var b strings.Builder
	b.WriteString("Usage:\n")
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	for _, f := range c.forms {
		fmt.Fprintf(tw, "  weftctl %s\t%s\n", f[0], f[1])
	}
	tw.Flush()
	if c.more != "" {
		b.WriteString("\n" + c.more + "\n")
	}
	names := c.flags
	if c.etcd {
		names = append(append([]string(nil), names...), etcdFlags...)
	}
	if len(names) > 0 {
		b.WriteString("\nFlags (each also as WEFTCTL_<FLAG>):\n")
		all := newFlagSet(&options{}, io.Discard)
		some := flag.NewFlagSet("weftctl "+c.name, flag.ContinueOnError)
		some.SetOutput(&b)
		for _, n := range names {
			if f := all.Lookup(n); f != nil {
				some.Var(f.Value, f.Name, f.Usage)
			}
		}
		some.PrintDefaults()
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func commandNames() string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}
