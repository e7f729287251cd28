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

// Manager reads and writes weft's state in etcd.
type Manager struct {
	cli         *clientv3.Client
	prefix      string
	ttl         time.Duration
	renewMargin time.Duration
	log         *slog.Logger
	lastContact atomic.Int64 // unix nanoseconds
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

// LeaseKey is the etcd key of a subnet's lease.
func (m *Manager) LeaseKey(subnet netip.Prefix) string {
	return m.subnetsPrefix() + subnetKeyName(subnet)
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
	leaseID     clientv3.LeaseID
	modRevision int64
}

// decodeLeaseKV turns a key-value into a lease; malformed keys or values
// are errors (callers log and skip them).
func (m *Manager) decodeLeaseKV(kv *mvccpb.KeyValue) (storedLease, error) {
	name, ok := strings.CutPrefix(string(kv.Key), m.subnetsPrefix())
	if !ok {
		return storedLease{}, fmt.Errorf("key %q is not under %s", kv.Key, m.subnetsPrefix())
	}
	subnet, err := parseSubnetKeyName(name)
	if err != nil {
		return storedLease{}, err
	}
	attrs, err := parseLeaseAttrs(kv.Value)
	if err != nil {
		return storedLease{Lease: Lease{Subnet: subnet}}, fmt.Errorf("%s: %w", kv.Key, err)
	}
	return storedLease{
		Lease:       Lease{Subnet: subnet, Attrs: attrs, Reservation: kv.Lease == 0},
		leaseID:     clientv3.LeaseID(kv.Lease),
		modRevision: kv.ModRevision,
	}, nil
}

// listStored reads every lease key. Keys whose name parses but whose
// value does not still occupy their subnet: they are returned in taken.
func (m *Manager) listStored(ctx context.Context) (leases []storedLease, taken map[netip.Prefix]bool, rev int64, err error) {
	resp, err := m.cli.Get(ctx, m.subnetsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, nil, 0, fmt.Errorf("list leases under %s: %w", m.subnetsPrefix(), err)
	}
	m.touch()
	taken = make(map[netip.Prefix]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		sl, err := m.decodeLeaseKV(kv)
		if sl.Subnet.IsValid() {
			taken[sl.Subnet] = true
		}
		if err != nil {
			m.log.Warn("ignoring malformed lease", "key", string(kv.Key), "err", err)
			continue
		}
		leases = append(leases, sl)
	}
	return leases, taken, resp.Header.Revision, nil
}

// ListLeases returns every well-formed lease, reservations included,
// sorted by subnet, with expirations looked up.
func (m *Manager) ListLeases(ctx context.Context) ([]Lease, error) {
	stored, _, _, err := m.listStored(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Lease, 0, len(stored))
	for _, sl := range stored {
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
	sort.Slice(ls, func(i, j int) bool { return ls[i].Subnet.Addr().Less(ls[j].Subnet.Addr()) })
}
