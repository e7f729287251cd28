package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/weftnet/weft/cni/daemonsock"
	"github.com/weftnet/weft/cpusched"
	"github.com/weftnet/weft/overlay"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/subnetfile"
	"github.com/weftnet/weft/workload"
)

// options are weftd's command-line settings. Names follow flannel's where
// flannel has one; every flag can also be given as WEFTD_<FLAG> in the
// environment (flannel's convention).
type options struct {
	etcdEndpoints string
	etcdPrefix    string
	// etcd holds the TLS and authentication flags (Endpoints: see endpoints).
	etcd subnet.ClientOptions

	iface      string
	publicIP   string
	publicIPv6 string
	subnetFile string
	tunName    string
	queues     int // TUN queues, each with its own UDP socket and workers
	lockFile   string
	ipMasq     bool

	// flannelSubnetFile, when set, gets the subnet in flannel's format too.
	flannelSubnetFile string

	leaseTTL         time.Duration
	leaseRenewMargin time.Duration

	embeddedEtcdDir        string
	embeddedEtcdListen     string
	embeddedEtcdPeerListen string
	networkConfig          string

	healthzIP   string
	healthzPort int
	etcdGrace   time.Duration

	logFormat string
	logLevel  string
	version   bool

	cniSocket     string
	endpointsFile string
	endpointTTL   time.Duration

	cpuProfile string // debugging: write a CPU profile here until exit

	schedSlice time.Duration // EEVDF slice of every weftd thread (0: the kernel's)
	aqm        overlay.AQM   // CoDel on each TUN queue (udp backend); Target 0: off
	nice       int           // nice value of every weftd thread, at most

	stateDir          string // state kept across restarts (the wireguard key)
	wireguardUAPIName string // the wireguard backend's UAPI socket name (default: the device's)

	networkPolicy bool   // enforce NetworkPolicy for this node's containers
	policyBridge  string // the CNI bridge whose same-host traffic policy must see
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("weftd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.etcdEndpoints, "etcd-endpoints", "http://127.0.0.1:2379", "comma-separated list of etcd endpoints")
	fs.StringVar(&o.etcdPrefix, "etcd-prefix", "/weft/network", "etcd prefix under which config and leases live")
	o.etcd.AddCredentialFlags(fs)
	fs.StringVar(&o.iface, "iface", "", "underlay interface (name or IP address); default: the interface of the default route")
	fs.StringVar(&o.publicIP, "public-ip", "", "IP address other nodes use to reach this one; default: the first IPv4 address of --iface")
	fs.StringVar(&o.publicIPv6, "public-ipv6", "", "IPv6 address other nodes use to reach this one (the lease's PublicIPv6); default, when the network has IPv6 (or the interface no IPv4 address): the first global IPv6 address of --iface")
	fs.StringVar(&o.subnetFile, "subnet-file", subnetfile.DefaultPath, "file to write this node's subnet, network and MTU to")
	fs.StringVar(&o.tunName, "tun-name", "weft0", "name of the TUN device")
	fs.IntVar(&o.queues, "queues", 1, fmt.Sprintf("TUN queues (IFF_MULTI_QUEUE when > 1), each with its own SO_REUSEPORT UDP socket and forwarding workers; a flow always uses one queue (1 to %d)", overlay.MaxQueues))
	fs.StringVar(&o.lockFile, "lock-file", "", "lock file that keeps a second weftd from starting (default: /run/weft/weftd-netns-<inode>.lock, one per network namespace)")
	fs.StringVar(&o.flannelSubnetFile, "flannel-subnet-file", "", "also write the subnet in flannel's format (FLANNEL_NETWORK, FLANNEL_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ) to this file, e.g. /run/flannel/subnet.env for flannel's CNI plugin (default: off)")
	fs.BoolVar(&o.ipMasq, "ip-masq", false, "masquerade traffic from the overlay network to destinations outside it, as flanneld --ip-masq, both families (nftables tables ip and ip6 "+ipMasqTable+", removed on exit, or at the next start without the flag); the subnet files say so (WEFT_IPMASQ/FLANNEL_IPMASQ=true) and the CNI plugin then adds no rules of its own")
	fs.DurationVar(&o.leaseTTL, "subnet-lease-ttl", 24*time.Hour, "TTL of this node's subnet lease in etcd")
	fs.DurationVar(&o.leaseRenewMargin, "subnet-lease-renew-margin", time.Hour, "renew the lease this long before it expires")
	fs.StringVar(&o.embeddedEtcdDir, "embedded-etcd-dir", "", "run an embedded single-member etcd with its data in this directory")
	fs.StringVar(&o.embeddedEtcdListen, "embedded-etcd-listen", "http://127.0.0.1:2379", "client URL of the embedded etcd")
	fs.StringVar(&o.embeddedEtcdPeerListen, "embedded-etcd-peer-listen", "", "peer URL of the embedded etcd (default: client host, port+1)")
	fs.StringVar(&o.networkConfig, "network-config", "", "network config JSON (flannel schema) to store in etcd if none exists")
	fs.StringVar(&o.healthzIP, "healthz-ip", "127.0.0.1", "address to serve /healthz, /readyz, /metrics and /status on")
	fs.IntVar(&o.healthzPort, "healthz-port", 8286, "port for the health and metrics endpoint (0 disables it)")
	fs.DurationVar(&o.etcdGrace, "etcd-grace", 30*time.Second, "how long etcd may be unreachable before /readyz reports degraded")
	fs.StringVar(&o.cniSocket, "cni-socket", daemonsock.DefaultPath, "unix socket on which the CNI plugin reports containers (\"\" disables it: containers are then unknown to network policy)")
	fs.StringVar(&o.endpointsFile, "endpoints-file", "/run/weft/endpoints.json", "file listing this node's containers, published again after a restart")
	fs.DurationVar(&o.endpointTTL, "endpoint-ttl", workload.DefaultLivenessTTL, "TTL of the etcd lease carrying this node's containers (they vanish this long after the node dies)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.StringVar(&o.cpuProfile, "cpu-profile", "", "(debugging) write a Go CPU profile to this file until weftd exits")
	fs.IntVar(&o.nice, "nice", cpusched.DefaultNice, fmt.Sprintf("nice value of every weftd thread, at most (a stronger one, e.g. systemd's Nice=, is kept): a larger share of a contended CPU, so that a busy weftd does not leave packets queued in front of it while the task that sends them runs (shorter latency under load, some throughput lost: docs/flags.md); stays in the fair class (nothing is starved); lowering it needs CAP_SYS_NICE, without which weftd warns once and keeps its own; 0 leaves it (%d to %d)", cpusched.MinNice, cpusched.MaxNice))
	fs.DurationVar(&o.aqm.Target, "aqm-target", 0, fmt.Sprintf("udp backend: CoDel on each TUN queue: the standing delay tolerated in front of weftd (how long the queue may stay non-empty) before it drops, or marks CE if ECN-capable, a TCP segment of the flow filling it; shortens the queue a loss-based TCP (cubic, reno) keeps there, costs throughput when set low; BBR ignores it (docs/flags.md); 0: off; else %v to %v", overlay.MinAQMTarget, overlay.MaxAQMTarget))
	fs.DurationVar(&o.aqm.Interval, "aqm-interval", 5*time.Millisecond, fmt.Sprintf("udp backend: with --aqm-target, how long the delay must stay above the target before the first drop, and the base of CoDel's control law; about the longest round trip of the flows it should slow down (--aqm-target to %v)", overlay.MaxAQMInterval))
	fs.DurationVar(&o.schedSlice, "sched-slice", cpusched.DefaultSlice, fmt.Sprintf("scheduler slice of every weftd thread (SCHED_OTHER with sched_runtime, Linux >= 6.12): a woken weftd thread with a slice shorter than the running task's preempts it; the CPU share is unchanged (0: the kernel's default; else %v to %v)", cpusched.MinSlice, cpusched.MaxSlice))
	fs.StringVar(&o.stateDir, "state-dir", "/var/lib/weft", "directory of state kept across restarts: the wireguard backend's private key (wireguard.key, mode 0600, made at the first start) and optional pre-shared key (wireguard.psk)")
	fs.StringVar(&o.wireguardUAPIName, "wireguard-uapi-name", "", "wireguard backend: name of the UAPI socket /var/run/wireguard/NAME.sock that `wg show NAME` reads (default: the device name, --tun-name)")
	fs.BoolVar(&o.networkPolicy, "network-policy", true, "enforce NetworkPolicy for this node's containers (nftables tables ip, ip6 and bridge weft-policy, kept when weftd stops; false removes them)")
	fs.StringVar(&o.policyBridge, "policy-bridge", "weftbr0", "bridge the CNI plugin attaches containers to (same-host traffic is filtered there)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: weftd [flags]

weftd is weft's node daemon: it leases this host's subnet from etcd and
carries its containers' traffic to the other nodes.

Every flag can also be set in the environment as WEFTD_<FLAG>: the flag's
name in upper case with "-" as "_" (--etcd-endpoints is %s,
--ip-masq is %s=true); the command line wins over the environment.

Flags:
`, subnet.FlagEnvName("WEFTD", "etcd-endpoints"), subnet.FlagEnvName("WEFTD", "ip-masq"))
		fs.PrintDefaults()
	}
	if err := subnet.FlagsFromEnv(fs, "WEFTD"); err != nil {
		return nil, err
	}
	// The flag package would print a bad flag's error and the whole usage:
	// run prints the error alone; -h prints the usage.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.Usage()
		}
		return nil, subnet.ExplainFlagError(fs, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	// Using the embedded etcd without naming endpoints means: talk to it.
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if o.embeddedEtcdDir != "" && !explicit["etcd-endpoints"] && !envSet("WEFTD_ETCD_ENDPOINTS") {
		o.etcdEndpoints = o.embeddedEtcdListen
	}
	if err := subnet.CheckEndpoints(o.endpoints()); err != nil {
		return nil, fmt.Errorf("--etcd-endpoints: %w", err)
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return nil, fmt.Errorf("--log-format: want text or json, got %q", o.logFormat)
	}
	if o.endpointTTL < 2*time.Second {
		return nil, fmt.Errorf("--endpoint-ttl %s too short (minimum 2s)", o.endpointTTL)
	}
	if o.flannelSubnetFile != "" && filepath.Clean(o.flannelSubnetFile) == filepath.Clean(o.subnetFile) {
		return nil, fmt.Errorf("--flannel-subnet-file and --subnet-file are both %s: they need separate files", o.subnetFile)
	}
	if o.queues < 1 || o.queues > overlay.MaxQueues {
		return nil, fmt.Errorf("--queues %d: want 1 to %d", o.queues, overlay.MaxQueues)
	}
	if o.leaseTTL < 2*time.Second {
		return nil, fmt.Errorf("--subnet-lease-ttl %s too short (minimum 2s)", o.leaseTTL)
	}
	if err := o.aqm.Check(); err != nil {
		return nil, fmt.Errorf("--aqm-target / --aqm-interval: %w", err)
	}
	if err := o.sched().Check(); err != nil {
		return nil, fmt.Errorf("--sched-slice / --nice: %w", err)
	}
	return o, nil
}

func (o *options) endpoints() []string { return subnet.SplitEndpoints(o.etcdEndpoints) }

// sched is the scheduler setting of weftd's threads.
func (o *options) sched() cpusched.Setting {
	return cpusched.Setting{Slice: o.schedSlice, Nice: o.nice}
}
