package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/weftnet/weft/subnet"
)

// options are weftctl's flags; each can come from WEFTCTL_<FLAG>.
type options struct {
	etcdEndpoints string
	prefix        string
	etcd          subnet.ClientOptions // TLS and authentication flags
	dialTimeout   time.Duration
	timeout       time.Duration
	daemonURL     string
	output        string
	file          string
	namespace     string
	stateDir      string
	version       bool
}

// newFlagSet defines weftctl's flags on o. Its output is w (help and errors
// are printed by run, not by the flag package).
func newFlagSet(o *options, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("weftctl", flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {}
	fs.StringVar(&o.etcdEndpoints, "etcd-endpoints", "http://127.0.0.1:2379", "comma-separated list of etcd endpoints")
	fs.StringVar(&o.prefix, "etcd-prefix", subnet.DefaultPrefix, "etcd prefix under which config and leases live")
	o.etcd.AddCredentialFlags(fs)
	fs.DurationVar(&o.dialTimeout, "etcd-dial-timeout", subnet.DefaultDialTimeout, "how long to wait for etcd to answer")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "time limit of the whole command")
	fs.StringVar(&o.daemonURL, "daemon-url", "http://127.0.0.1:8286", "weftd's health/status address (status command)")
	fs.StringVar(&o.output, "o", "table", "output format: table or json (leases, status, endpoints, namespace list, policy list)")
	fs.StringVar(&o.file, "f", "", "policy apply: file of NetworkPolicy manifests, YAML or JSON (- for standard input)")
	fs.BoolVar(&o.version, "version", false, "print weftctl's version and exit")
	fs.StringVar(&o.stateDir, "state-dir", "/var/lib/weft", "weftd's --state-dir (wireguard rotate-key: the private key is there)")
	fs.StringVar(&o.namespace, "n", "", "namespace (policy get/delete NAME, policy list, endpoints); default: all, or \"default\" for a policy NAME")
	return fs
}

// parseArgs accepts flags before, between and after the command words.
// -h or --help returns flag.ErrHelp with the command words before it (so
// `weftctl policy --help` is `weftctl help policy`); --version is the
// command "version".
func parseArgs(args []string) (*options, []string, error) {
	o := &options{}
	fs := newFlagSet(o, io.Discard)
	if err := subnet.FlagsFromEnv(fs, "WEFTCTL"); err != nil {
		return nil, nil, err
	}
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				// `weftctl --help policy` is help policy too.
				for _, a := range fs.Args() {
					if len(words) == 0 && !strings.HasPrefix(a, "-") {
						words = append(words, a)
					}
				}
				return o, words, err
			}
			return nil, nil, subnet.ExplainFlagError(fs, err)
		}
		if fs.NArg() == 0 {
			break
		}
		words = append(words, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if o.version {
		words = []string{"version"}
	}
	if len(words) == 0 {
		return nil, nil, errors.New("no command given")
	}
	if o.output != "table" && o.output != "json" {
		return nil, nil, fmt.Errorf("-o: want table or json, got %q", o.output)
	}
	if len(o.endpoints()) == 0 {
		return nil, nil, errors.New("--etcd-endpoints: no endpoint given")
	}
	return o, words, nil
}

func (o *options) endpoints() []string { return subnet.SplitEndpoints(o.etcdEndpoints) }
