package sched

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mycelfabric/mycel/securityplane/envelope"
)

// SubjectFmt is the bus subject a node answers tenders and awards on,
// formatted with its peer ID.
const SubjectFmt = "mycel.v1.sched.%s"

// BusTransport carries negotiation messages as signed envelopes over the
// bus, point to point: a request on the candidate's subject, a signed reply.
// It is also the candidate's end: Serve answers with the node's Bidder.
type BusTransport struct {
	// Conn is the node's bus connection; Key signs and Self is the node's
	// peer ID; all required.
	Conn *nats.Conn
	Key  crypto.PrivKey
	Self string
	// Opener checks every received envelope (signature, membership, skew,
	// replay); required.
	Opener *envelope.Opener
	// Bidder answers tenders and awards addressed to this node; required
	// for Serve.
	Bidder *Bidder
	// Rejected, if set, counts awards refused (label "reason").
	Rejected *prometheus.CounterVec
	// Logger; nil discards.
	Logger *slog.Logger
}

var _ Transport = (*BusTransport)(nil)

// NewRejectedAwards returns the counter BusTransport.Rejected expects,
// registered with reg.
func NewRejectedAwards(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mycel_sched_awards_rejected_total",
		Help: "Awards this node refused: unknown_tender (forged, replayed or for a bid it never made) or envelope (failed the signed-envelope checks).",
	}, []string{"reason"})
	return c, reg.Register(c)
}

func (b *BusTransport) log() *slog.Logger {
	if b.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.Logger
}

// Serve answers this node's subject until ctx is done.
func (b *BusTransport) Serve(ctx context.Context) error {
	if b.Bidder == nil {
		return errors.New("sched: BusTransport.Bidder is required to serve")
	}
	sub, err := b.Conn.Subscribe(fmt.Sprintf(SubjectFmt, b.Self), func(m *nats.Msg) { b.answer(ctx, m) })
	if err != nil {
		return fmt.Errorf("sched: subscribe: %w", err)
	}
	<-ctx.Done()
	return sub.Unsubscribe()
}

func (b *BusTransport) answer(ctx context.Context, m *nats.Msg) {
	e, err := b.Opener.Open(m.Data)
	var reply Reply
	switch {
	case err != nil:
		if b.Rejected != nil {
			b.Rejected.WithLabelValues("envelope").Inc()
		}
		b.log().Debug("drop negotiation message", "err", err)
		return // no answer: the sender is not one we talk to
	case e.Type == TypeTender:
		var t Tender
		if err := json.Unmarshal(e.Payload, &t); err != nil {
			reply = Reply{Type: TypeDecline, Reasons: []string{"malformed tender"}}
			break
		}
		reply = b.Bidder.OnTender(ctx, e.Sender, t)
	case e.Type == TypeAward:
		var a Award
		if err := json.Unmarshal(e.Payload, &a); err != nil {
			reply = Reply{Type: TypeDecline, Reasons: []string{"malformed award"}}
			break
		}
		if reply, err = b.Bidder.OnAward(e.Sender, a); err != nil {
			if b.Rejected != nil && errors.Is(err, ErrUnknownTender) {
				b.Rejected.WithLabelValues("unknown_tender").Inc()
			}
			b.log().Warn("refuse award", "err", err)
			reply = Reply{Tender: a.Tender, Type: TypeDecline, Reasons: []string{"award refused: " + err.Error()}}
		}
	default:
		reply = Reply{Type: TypeDecline, Reasons: []string{fmt.Sprintf("unknown message type %q", e.Type)}}
	}
	data, err := b.seal(reply.Type, reply)
	if err == nil {
		err = m.Respond(data)
	}
	if err != nil {
		b.log().Debug("answer negotiation message", "err", err)
	}
}

func (b *BusTransport) seal(typ string, v any) ([]byte, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return envelope.Seal(b.Key, typ, payload, time.Now())
}

// Tender sends t to peer and returns its Bid or Decline.
func (b *BusTransport) Tender(ctx context.Context, peer string, t Tender) (Reply, error) {
	return b.ask(ctx, peer, TypeTender, t)
}

// Award sends a to peer and returns its Confirm or Decline.
func (b *BusTransport) Award(ctx context.Context, peer string, a Award) (Reply, error) {
	return b.ask(ctx, peer, TypeAward, a)
}

func (b *BusTransport) ask(ctx context.Context, peer, typ string, v any) (Reply, error) {
	data, err := b.seal(typ, v)
	if err != nil {
		return Reply{}, err
	}
	m, err := b.Conn.RequestWithContext(ctx, fmt.Sprintf(SubjectFmt, peer), data)
	if err != nil {
		return Reply{}, fmt.Errorf("%s to %s: %w", typ, peer, err)
	}
	e, err := b.Opener.Open(m.Data)
	if err != nil {
		return Reply{}, fmt.Errorf("reply from %s: %w", peer, err)
	}
	if e.Sender != peer {
		return Reply{}, fmt.Errorf("sched: %s answered for %s", e.Sender, peer)
	}
	var r Reply
	if err := json.Unmarshal(e.Payload, &r); err != nil {
		return Reply{}, fmt.Errorf("sched: malformed reply from %s: %w", peer, err)
	}
	if r.Type != e.Type {
		return Reply{}, fmt.Errorf("sched: reply from %s says %q in a %q envelope", peer, r.Type, e.Type)
	}
	return r, nil
}
