package subnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/subnet/etcdread"
)

// Defaults of Options.
const (
	DefaultPrefix      = "/weft/network"
	DefaultTTL         = 24 * time.Hour
	DefaultRenewMargin = time.Hour
)

// Options tune a Manager; zero values mean the defaults.
type Options struct {
	// Prefix is the etcd key prefix (default /weft/network).
	Prefix string
	// TTL of this node's lease (default 24h, rounded up to whole seconds).
	TTL time.Duration
	// RenewMargin: renew this long before expiry (default 1h). When it is
	// not shorter than TTL, the lease is renewed every TTL/3.
	RenewMargin time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Manager reads and writes the network config and the subnet leases in
// etcd; the workload store (package workload) shares its client and prefix.
type Manager struct {
	cli         *clientv3.Client
	prefix      string
	ttl         time.Duration
	renewMargin time.Duration
	log         *slog.Logger
	lastContact atomic.Int64 // unix nanoseconds
	malformed   atomic.Int64 // unusable lease keys seen by WatchLeases
	families    familyLog    // single-family keys in a dual-stack network, logged once each
}

// NewManager returns a Manager using cli.
func NewManager(cli *clientv3.Client, opts Options) *Manager {
	m := &Manager{
		cli:         cli,
		prefix:      strings.TrimRight(opts.Prefix, "/"),
		ttl:         opts.TTL,
		renewMargin: opts.RenewMargin,
		log:         opts.Logger,
	}
	if opts.Prefix == "" {
		m.prefix = DefaultPrefix
	}
	if m.ttl <= 0 {
		m.ttl = DefaultTTL
	}
	if m.ttl < time.Second {
		m.ttl = time.Second
	}
	if m.renewMargin <= 0 {
		m.renewMargin = DefaultRenewMargin
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	return m
}

// ConfigKey is where the network config lives.
func (m *Manager) ConfigKey() string { return m.prefix + "/config" }

// subnetsPrefix is the directory of lease keys, with a trailing slash.
func (m *Manager) subnetsPrefix() string { return m.prefix + "/subnets/" }

// LeaseKey is the etcd key of an IPv4 subnet's lease in a network without
// IPv6 ("10.5.1.0-24"); LeaseKeyOf names any lease's.
func (m *Manager) LeaseKey(subnet netip.Prefix) string {
	return m.subnetsPrefix() + subnetKeyName(subnet)
}

// LeaseKeyOf is the etcd key of lease l, in flannel's form for its
// families: "10.5.1.0-24", "10.5.1.0-24&fc00::-64", "0.0.0.0-0&fc00::-64".
func (m *Manager) LeaseKeyOf(l Lease) string {
	return m.subnetsPrefix() + l.keyName()
}

// RoundTrip is one etcd round trip inside weft's prefix (a count-only read
// of the config key, which a role limited to the prefix may read), for
// callers that measure etcd's latency or reachability.
func (m *Manager) RoundTrip(ctx context.Context) error {
	_, err := m.Revision(ctx)
	return err
}

// Revision is etcd's current revision, read with one round trip as
// RoundTrip makes it (a write anywhere in etcd raises it).
func (m *Manager) Revision(ctx context.Context) (int64, error) {
	resp, err := m.cli.Get(ctx, m.ConfigKey(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("etcd round trip (%s): %w", m.ConfigKey(), err)
	}
	m.touch()
	return resp.Header.Revision, nil
}

// LastContact is the time of the last successful etcd round trip (zero
// before the first).
func (m *Manager) LastContact() time.Time {
	ns := m.lastContact.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func (m *Manager) touch() { m.lastContact.Store(time.Now().UnixNano()) }

// Prefix is the etcd key prefix (without a trailing slash).
func (m *Manager) Prefix() string { return m.prefix }

// Client is the etcd client the Manager uses.
func (m *Manager) Client() *clientv3.Client { return m.cli }

// NoteContact records a successful etcd round trip made with Client by
// another user of it (the workload store), for LastContact.
func (m *Manager) NoteContact() { m.touch() }

// renewInterval is how long after a grant or renewal to renew again.
func (m *Manager) renewInterval(ttl time.Duration) time.Duration {
	if m.renewMargin >= ttl {
		return ttl / 3
	}
	return ttl - m.renewMargin
}

// ttlSeconds is the TTL as etcd wants it.
func (m *Manager) ttlSeconds() int64 {
	return int64((m.ttl + time.Second - 1) / time.Second)
}

// GetConfig reads the network config.
func (m *Manager) GetConfig(ctx context.Context) (*Config, error) {
	resp, err := m.cli.Get(ctx, m.ConfigKey())
	if err != nil {
		return nil, fmt.Errorf("read network config %s: %w", m.ConfigKey(), err)
	}
	m.touch()
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("no network config at %s; set one with weftctl config set", m.ConfigKey())
	}
	cfg, err := ParseConfig(resp.Kvs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.ConfigKey(), err)
	}
	return cfg, nil
}

// SetConfig validates cfg and writes it, replacing any config.
func (m *Manager) SetConfig(ctx context.Context, cfg *Config) error {
	data, err := m.validatedConfigJSON(cfg)
	if err != nil {
		return err
	}
	if _, err := m.cli.Put(ctx, m.ConfigKey(), string(data)); err != nil {
		return fmt.Errorf("write network config %s: %w", m.ConfigKey(), err)
	}
	m.touch()
	return nil
}

// EnsureConfig writes cfg only if no config exists yet; created tells
// whether it did.
func (m *Manager) EnsureConfig(ctx context.Context, cfg *Config) (bool, error) {
	data, err := m.validatedConfigJSON(cfg)
	if err != nil {
		return false, err
	}
	key := m.ConfigKey()
	resp, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data))).
		Commit()
	if err != nil {
		return false, fmt.Errorf("write network config %s: %w", key, err)
	}
	m.touch()
	return resp.Succeeded, nil
}

func (m *Manager) validatedConfigJSON(cfg *Config) ([]byte, error) {
	if cfg == nil {
		return nil, errors.New("network config is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg.MarshalJSON()
}

// storedLease is a lease key as read from etcd.
type storedLease struct {
	Lease
	// key is the etcd key as stored: with checkFamilies, Lease may have
	// lost a half of the name (a family the network does not have).
	key         string
	leaseID     clientv3.LeaseID
	modRevision int64
	// createRevision tells which of two keys naming one subnet came
	// first (it holds the subnet; see WatchLeases).
	createRevision int64
	// junkValue is the start of an unusable value, quoted, for logs.
	junkValue string
}

// decodeLeaseKV turns a key-value into a lease; malformed keys or values
// are errors (callers count and skip them). When the key names a subnet
// but the value is unusable, the returned storedLease still carries the
// subnet, the etcd lease and the revision.
func (m *Manager) decodeLeaseKV(kv *mvccpb.KeyValue) (storedLease, error) {
	name, ok := strings.CutPrefix(string(kv.Key), m.subnetsPrefix())
	if !ok {
		return storedLease{}, fmt.Errorf("key %s is not under %s", quoteValue(kv.Key), m.subnetsPrefix())
	}
	v4, v6, err := parseLeaseKeyName(name)
	if err != nil {
		return storedLease{}, err
	}
	sl := storedLease{
		Lease:          Lease{Subnet: v4, IPv6Subnet: v6, Reservation: kv.Lease == 0},
		key:            string(kv.Key),
		leaseID:        clientv3.LeaseID(kv.Lease),
		modRevision:    kv.ModRevision,
		createRevision: kv.CreateRevision,
	}
	attrs, err := parseLeaseAttrs(kv.Value)
	if err != nil {
		return sl, fmt.Errorf("%s: %w", name, err)
	}
	sl.Attrs = attrs
	return sl, nil
}

// malformedExamples is how many malformed keys a listing's summary names.
const malformedExamples = 3

// listing is one consistent read of every lease key.
type listing struct {
	leases []storedLease
	// oneFamily holds the keys with a usable value that lack a family
	// the network has (an IPv4 key in a dual-stack network): skipped as
	// peers, their subnets taken, never reclaimed.
	oneFamily []storedLease
	// unusable holds every key that names a subnet but holds no usable
	// lease (junk is those of them without a TTL).
	unusable []storedLease
	// taken holds every subnet a key occupies, usable or not.
	taken map[netip.Prefix]bool
	// junk holds the keys that name a subnet but whose value is unusable
	// and that have no TTL: they would occupy their subnet for good, so an
	// allocation may reclaim them when no subnet is free.
	junk []storedLease
	// malformed counts the keys that are no usable lease (bad name, bad
	// value, or outside cfg when one was given).
	malformed int
	rev       int64
}

// listStored reads every lease key, page by page at one revision. Keys
// whose value cannot be used are counted and logged in one summary line
// (not a line per key); when cfg is not nil, leases that do not fit its
// network count as malformed too.
// onMalformed, if not nil, is called with each of those keys.
func (m *Manager) listStored(ctx context.Context, cfg *Config, onMalformed func(*mvccpb.KeyValue)) (*listing, error) {
	l := &listing{taken: map[netip.Prefix]bool{}}
	var examples []string
	rev, err := m.scanPrefix(ctx, m.subnetsPrefix(), func(kv *mvccpb.KeyValue) {
		sl, err := m.decodeLeaseKV(kv)
		for _, p := range []netip.Prefix{sl.Subnet, sl.IPv6Subnet} {
			if p.IsValid() {
				l.taken[p] = true
			}
		}
		if err == nil && cfg != nil {
			var missing bool
			if missing, err = cfg.checkFamilies(&sl.Lease); missing {
				// Unusable like malformed ones, but expected while a
				// network turns dual-stack: logged once per key, not in
				// every listing's summary.
				if onMalformed != nil {
					onMalformed(kv)
				}
				m.families.once(m.log, sl.key, err)
				l.oneFamily = append(l.oneFamily, sl)
				return
			}
		}
		if err != nil {
			if sl.Subnet.IsValid() || sl.IPv6Subnet.IsValid() {
				l.unusable = append(l.unusable, sl)
			}
			l.malformed++
			if onMalformed != nil {
				onMalformed(kv)
			}
			if len(examples) < malformedExamples {
				examples = append(examples, err.Error())
			}
			if (sl.Subnet.IsValid() || sl.IPv6Subnet.IsValid()) && kv.Lease == 0 {
				sl.junkValue = quoteValue(kv.Value)
				l.junk = append(l.junk, sl)
			}
			return
		}
		l.leases = append(l.leases, sl)
	})
	if err != nil {
		return nil, fmt.Errorf("list leases under %s: %w", m.subnetsPrefix(), err)
	}
	l.rev = rev
	if l.malformed > 0 {
		m.log.Warn("ignoring malformed leases", "count", l.malformed, "examples", examples)
	}
	return l, nil
}

// reader reads with bounds (etcdread), noting each contact.
func (m *Manager) reader() etcdread.Reader {
	return etcdread.Reader{Client: m.cli, Contact: m.touch}
}

// scanPrefix reads every key under prefix in bounded pages
// (etcdread.Reader.ScanPrefix) at the revision of the first page.
func (m *Manager) scanPrefix(ctx context.Context, prefix string, fn func(*mvccpb.KeyValue)) (int64, error) {
	return m.reader().ScanPrefix(ctx, prefix, 0, fn)
}

// getKey reads one key (etcdread.Reader.GetKey: an oversized value comes
// back empty).
func (m *Manager) getKey(ctx context.Context, key string) (*clientv3.GetResponse, error) {
	return m.reader().GetKey(ctx, key)
}

// ListLeases returns every well-formed lease, reservations included,
// sorted by subnet, with expirations looked up.
func (m *Manager) ListLeases(ctx context.Context) ([]Lease, error) {
	l, err := m.listStored(ctx, nil, nil)
	if err != nil {
		return nil, err
	}
	out := make([]Lease, 0, len(l.leases))
	for _, sl := range l.leases {
		l := sl.Lease
		if sl.leaseID != 0 {
			ttl, err := m.cli.TimeToLive(ctx, sl.leaseID)
			if err != nil {
				return nil, fmt.Errorf("look up TTL of lease %s: %w", l.Subnet, err)
			}
			if ttl.TTL > 0 {
				l.Expiration = time.Now().Add(time.Duration(ttl.TTL) * time.Second).Truncate(time.Second)
			}
		}
		out = append(out, l)
	}
	sortLeases(out)
	return out, nil
}

func sortLeases(ls []Lease) {
	sort.Slice(ls, func(i, j int) bool {
		if a, b := ls[i].Primary().Addr(), ls[j].Primary().Addr(); a != b {
			return a.Less(b)
		}
		return ls[i].IPv6Subnet.Addr().Less(ls[j].IPv6Subnet.Addr())
	})
}

// Probe makes a RoundTrip every interval (each bounded by it) until ctx
// ends and calls ok with the time of each that succeeded: weftd's
// readiness and latency metric.
func (m *Manager) Probe(ctx context.Context, interval time.Duration, ok func(rtt time.Duration)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, interval)
		start := time.Now()
		err := m.RoundTrip(rctx)
		cancel()
		if err == nil {
			ok(time.Since(start))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
