package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
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
}

func newFlagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("weftctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.etcdEndpoints, "etcd-endpoints", "http://127.0.0.1:2379", "comma-separated list of etcd endpoints")
	fs.StringVar(&o.prefix, "etcd-prefix", subnet.DefaultPrefix, "etcd prefix under which config and leases live")
	o.etcd.AddCredentialFlags(fs)
	fs.DurationVar(&o.dialTimeout, "etcd-dial-timeout", subnet.DefaultDialTimeout, "how long to wait for etcd to answer")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "time limit of the whole command")
	fs.StringVar(&o.daemonURL, "daemon-url", "http://127.0.0.1:8286", "weftd's health/status address (status command)")
	fs.StringVar(&o.output, "o", "table", "output format: table or json (leases, status, endpoints, namespace list, policy list)")
	fs.StringVar(&o.file, "f", "", "policy apply: file of NetworkPolicy manifests, YAML or JSON (- for standard input)")
	fs.StringVar(&o.namespace, "n", "", "namespace (policy get/delete NAME, policy list, endpoints); default: all, or \"default\" for a policy NAME")
	return fs
}

// parseArgs accepts flags before, between and after the command words.
func parseArgs(args []string, stderr io.Writer) (*options, []string, error) {
	o := &options{}
	fs := newFlagSet(o, stderr)
	if err := subnet.FlagsFromEnv(fs, "WEFTCTL"); err != nil {
		return nil, nil, err
	}
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		words = append(words, fs.Arg(0))
		args = fs.Args()[1:]
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
