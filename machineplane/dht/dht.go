// Package dht is the machine plane's Kademlia DHT: go-libp2p-kad-dht in
// server mode under the protocol prefix /mycel, storing only node records
// that noderecord's validator accepts, plus the capability index (provider
// records under capability keys).
package dht

import (
	"context"
	"errors"
	"fmt"
	"time"

	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	kb "github.com/libp2p/go-libp2p-kbucket"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mycelfabric/mycel/machineplane/noderecord"
)

// ProtocolPrefix namespaces Mycel's DHT protocol (/mycel/kad/1.0.0).
const ProtocolPrefix = "/mycel"

// ErrNotFound means no valid record or provider was found.
var ErrNotFound = errors.New("dht: not found")

// DHT is a node's view of the fabric's DHT.
type DHT struct {
	h   host.Host
	kad *kaddht.IpfsDHT
	v   *noderecord.Verifier
}

// Config configures a DHT.
type Config struct {
	// Verifier checks node records (and so decides what this node stores).
	Verifier *noderecord.Verifier
	// Bootstrap peers are dialled at start and whenever the routing table
	// runs empty.
	Bootstrap []peer.AddrInfo
	// JoinLater makes New return without dialling Bootstrap; the caller
	// joins with Join (and may retry it) when it chooses.
	JoinLater bool
	// Client makes this a DHT client that queries but stores and serves
	// nothing (for tools such as `mycel nodes`).
	Client bool
	// Rejected, if set, counts the records this node refused, by reason
	// (NewRejectedCounter).
	Rejected *prometheus.CounterVec
}

// NewRejectedCounter returns the counter Config.Rejected expects,
// registered with reg.
func NewRejectedCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mycel_dht_records_rejected_total",
		Help: "Node records this node refused to store or use, by reason (oversized, malformed, bad_signature, foreign_trust_domain, wrong_svid, svid_expired, expired).",
	}, []string{"reason"})
	return c, reg.Register(c)
}

// countingValidator counts what the node-record validator rejects.
type countingValidator struct {
	noderecord.Validator
	rejected *prometheus.CounterVec
}

func (c countingValidator) Validate(key string, value []byte) error {
	err := c.Validator.Validate(key, value)
	if err != nil && c.rejected != nil {
		c.rejected.WithLabelValues(noderecord.Reason(err)).Inc()
	}
	return err
}

// New starts the DHT on h and dials the bootstrap peers. It returns once at
// least one bootstrap peer (if any were given) is in the routing table,
// or at once with JoinLater.
func New(ctx context.Context, h host.Host, cfg Config) (*DHT, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("dht: Config.Verifier is required")
	}
	mode := kaddht.ModeServer
	if cfg.Client {
		mode = kaddht.ModeClient
	}
	kad, err := kaddht.New(h,
		kaddht.Mode(mode),
		kaddht.ProtocolPrefix(ProtocolPrefix),
		kaddht.Validator(record.NamespacedValidator{noderecord.Namespace: countingValidator{noderecord.Validator{Verifier: cfg.Verifier}, cfg.Rejected}}),
		kaddht.BootstrapPeers(cfg.Bootstrap...),
	)
	if err != nil {
		return nil, fmt.Errorf("dht: %w", err)
	}
	d := &DHT{h: h, kad: kad, v: cfg.Verifier}
	if len(cfg.Bootstrap) > 0 && !cfg.JoinLater {
		if err := d.Join(ctx, cfg.Bootstrap...); err != nil {
			kad.Close()
			return nil, err
		}
	}
	return d, nil
}

// Join connects to peers and waits until one of them is in the routing table.
func (d *DHT) Join(ctx context.Context, peers ...peer.AddrInfo) error {
	var errs []error
	for _, p := range peers {
		if err := d.h.Connect(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("dial %s: %w", p.ID, err))
		}
	}
	if len(errs) == len(peers) {
		return fmt.Errorf("dht: no bootstrap peer answered: %w", errors.Join(errs...))
	}
	// Peers enter the routing table asynchronously, after identify and a check.
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		for _, p := range peers {
			if d.kad.RoutingTable().Find(p.ID) != "" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dht: bootstrap peers connected but did not join the routing table: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Close stops the DHT (not the host).
func (d *DHT) Close() error { return d.kad.Close() }

// RoutingTableSize is the number of peers in the routing table.
func (d *DHT) RoutingTableSize() int { return d.kad.RoutingTable().Size() }

// Publish stores a signed node record under its peer's key, locally and on
// the closest peers. Alone in the fabric, it is stored locally only.
func (d *DHT) Publish(ctx context.Context, signed []byte) error {
	err := d.kad.PutValue(ctx, noderecord.Key(d.h.ID()), signed)
	if errors.Is(err, kb.ErrLookupFailure) {
		return nil // no peers yet: kept locally and served to those who ask
	}
	return err
}

// Lookup finds and verifies a peer's current node record: it asks the
// closest peers until the lookup ends and keeps the newest.
func (d *DHT) Lookup(ctx context.Context, id peer.ID) (*noderecord.Record, error) {
	return d.lookup(ctx, id)
}

// LookupAny returns the first valid record of a peer's it finds, which may
// not be the newest: for what rarely changes, such as a node's bus URL. It
// does not wait for slow or dead peers once a record is in hand.
func (d *DHT) LookupAny(ctx context.Context, id peer.ID) (*noderecord.Record, error) {
	return d.lookup(ctx, id, kaddht.Quorum(1))
}

func (d *DHT) lookup(ctx context.Context, id peer.ID, opts ...routing.Option) (*noderecord.Record, error) {
	key := noderecord.Key(id)
	val, err := d.kad.GetValue(ctx, key, opts...)
	if errors.Is(err, routing.ErrNotFound) {
		return nil, fmt.Errorf("%w: record of %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("dht: lookup %s: %w", id, err)
	}
	return d.v.Verify(key, val)
}

// Provide announces that this node has capability k=v.
func (d *DHT) Provide(ctx context.Context, k, v string) error {
	err := d.kad.Provide(ctx, noderecord.CapabilityKey(k, v), true)
	if errors.Is(err, kb.ErrLookupFailure) {
		return nil
	}
	return err
}

// FindProviders returns up to count peers that provide capability k=v
// (count 0: all the lookup finds).
func (d *DHT) FindProviders(ctx context.Context, k, v string, count int) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for ai := range d.kad.FindProvidersAsync(ctx, noderecord.CapabilityKey(k, v), count) {
		out = append(out, ai)
	}
	return out, ctx.Err()
}
