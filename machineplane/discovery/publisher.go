package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/mycelfabric/mycel/machineplane/noderecord"
)

// Record lifetimes: a node re-publishes its record well before it expires.
const (
	RecordTTL     = 5 * time.Minute
	RecordRefresh = time.Minute
)

// DHT is where records and capabilities are published (machineplane/dht).
type DHT interface {
	// Publish stores a signed record under its peer's key.
	Publish(ctx context.Context, signed []byte) error
	// Provide announces that this node has capability k=v.
	Provide(ctx context.Context, k, v string) error
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// DHT receives the records; Key signs them (the node's libp2p key).
	DHT DHT
	Key crypto.PrivKey
	// Facts returns what the record says now, but for Seq and Expires,
	// which the Publisher sets.
	Facts func(ctx context.Context) noderecord.Record
	// TTL is a record's lifetime; zero means RecordTTL.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Publisher signs and publishes the node's record. It is safe for
// concurrent use.
type Publisher struct {
	cfg       PublisherConfig
	publishMu sync.Mutex // serializes whole publications

	mu      sync.Mutex // guards the fields below
	lastSeq uint64
	signed  []byte
	record  *noderecord.Record
}

// NewPublisher returns a Publisher; call Sign before Signed or Record.
func NewPublisher(cfg PublisherConfig) *Publisher {
	if cfg.TTL == 0 {
		cfg.TTL = RecordTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Publisher{cfg: cfg}
}

// Sign builds and signs the node's current record, with a sequence number
// above every earlier one (wall-clock nanoseconds: newer than any record
// published before a restart, without keeping a counter on disk).
func (p *Publisher) Sign(ctx context.Context) (*noderecord.Record, error) {
	r := p.cfg.Facts(ctx)
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	r.Seq, r.Expires = max(uint64(now.UnixNano()), p.lastSeq+1), now.Add(p.cfg.TTL).Unix()
	signed, err := noderecord.Sign(&r, p.cfg.Key)
	if err != nil {
		return nil, err
	}
	p.lastSeq, p.signed, p.record = r.Seq, signed, &r
	return &r, nil
}

// Signed is the newest signed record (nil before the first Sign).
func (p *Publisher) Signed() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.signed
}

// Record is the newest signed record, decoded (nil before the first Sign).
// Callers must not modify it.
func (p *Publisher) Record() *noderecord.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.record
}

// Publish signs the current record, stores it and provides its
// capabilities. Publications are serialized whole, so one never overtakes
// a newer one (the DHT refuses to replace a record with an older one).
func (p *Publisher) Publish(ctx context.Context) error {
	p.publishMu.Lock()
	defer p.publishMu.Unlock()
	r, err := p.Sign(ctx)
	if err != nil {
		return err
	}
	if err := p.cfg.DHT.Publish(ctx, p.Signed()); err != nil {
		return err
	}
	for _, c := range r.Capabilities() {
		if err := p.cfg.DHT.Provide(ctx, c[0], c[1]); err != nil {
			return fmt.Errorf("provide %s=%s: %w", c[0], c[1], err)
		}
	}
	return nil
}

// Run publishes the record now and every refresh until ctx is done,
// logging failures (the next round retries).
func (p *Publisher) Run(ctx context.Context, refresh time.Duration, log *slog.Logger) {
	t := time.NewTicker(refresh)
	defer t.Stop()
	for {
		if err := p.Publish(ctx); err != nil && ctx.Err() == nil {
			log.Warn("publish node record", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
