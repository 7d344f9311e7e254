package sched

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mycelfabric/mycel/machineplane/bus"
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
	Conn bus.Conn
	Key  crypto.PrivKey
	Self string
	// Opener checks every received envelope (signature, membership, skew,
	// replay); required, and the placement protocol's own.
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

func (b *BusTransport) endpoint() *bus.Endpoint {
	return &bus.Endpoint{Conn: b.Conn, Key: b.Key, Opener: b.Opener}
}

// Serve answers this node's subject until ctx is done.
func (b *BusTransport) Serve(ctx context.Context) error {
	if b.Bidder == nil {
		return errors.New("sched: BusTransport.Bidder is required to serve")
	}
	sub, err := b.endpoint().Handle(fmt.Sprintf(SubjectFmt, b.Self), func(in *envelope.Envelope, refused error) (string, any) {
		return b.answer(ctx, in, refused)
	})
	if err != nil {
		return fmt.Errorf("sched: subscribe: %w", err)
	}
	<-ctx.Done()
	return sub.Unsubscribe()
}

func (b *BusTransport) answer(ctx context.Context, e *envelope.Envelope, refused error) (string, any) {
	var reply Reply
	switch {
	case refused != nil:
		if b.Rejected != nil {
			b.Rejected.WithLabelValues("envelope").Inc()
		}
		b.log().Debug("drop negotiation message", "err", refused)
		return "", nil // no answer: the sender is not one we talk to
	case e.Type == TypeTender:
		var t Tender
		if err := bus.Decode(e, TypeTender, &t); err != nil {
			reply = Reply{Type: TypeDecline, Reasons: []string{"malformed tender"}}
			break
		}
		reply = b.Bidder.OnTender(ctx, e.Sender, t)
	case e.Type == TypeAward:
		var a Award
		if err := bus.Decode(e, TypeAward, &a); err != nil {
			reply = Reply{Type: TypeDecline, Reasons: []string{"malformed award"}}
			break
		}
		var err error
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
	return reply.Type, reply
}

// Tender seals t once and sends it to every peer at once; each answers
// with a Bid or a Decline. Replies are parsed and decoded here, and their
// signatures verified only when the owner uses them (Answer), on the
// owner's goroutine rather than on the short-lived ones that wait for them
// (whose stacks would otherwise grow for the verification at every tender).
func (b *BusTransport) Tender(ctx context.Context, peers []string, t Tender) []Answer {
	out := make([]Answer, len(peers))
	e := b.endpoint()
	sealed, err := e.Seal(TypeTender, t)
	if err != nil {
		for i := range out {
			out[i].Err = fmt.Errorf("sched: %w", err)
		}
		return out
	}
	raw := make([][]byte, len(peers))
	var wg sync.WaitGroup
	for i, peer := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			raw[i], out[i].Err = e.Conn.Request(ctx, fmt.Sprintf(SubjectFmt, peer), sealed)
		}()
	}
	wg.Wait()
	for i, peer := range peers {
		if out[i].Err != nil {
			out[i].Err = fmt.Errorf("sched: %s to %s: %w", TypeTender, peer, out[i].Err)
			continue
		}
		env, err := b.Opener.Parse(raw[i])
		if err == nil && env.Sender != peer {
			err = fmt.Errorf("%s answered for %s", env.Sender, peer)
		}
		var r Reply
		var typ string
		if err == nil {
			typ = env.Type
			err = bus.Decode(env, typ, &r)
		}
		if out[i].Reply, out[i].Err = checkReply(peer, r, typ, err); out[i].Err == nil {
			out[i].verify = func() error { return b.Opener.Verify(env) }
		}
	}
	return out
}

// Award sends a to peer and returns its Confirm or Decline.
func (b *BusTransport) Award(ctx context.Context, peer string, a Award) (Reply, error) {
	sealed, err := b.endpoint().Seal(TypeAward, a)
	if err != nil {
		return Reply{}, fmt.Errorf("sched: %w", err)
	}
	return b.ask(ctx, peer, TypeAward, sealed)
}

// ask sends a sealed message of type typ to peer and decodes its reply.
func (b *BusTransport) ask(ctx context.Context, peer, typ string, sealed []byte) (Reply, error) {
	var r Reply
	got, err := b.endpoint().Ask(ctx, fmt.Sprintf(SubjectFmt, peer), peer, typ, sealed, &r)
	return checkReply(peer, r, got, err)
}

// checkReply passes on a reply decoded from an envelope of type got, or
// the error of its exchange; a reply whose type is not its envelope's is an
// error.
func checkReply(peer string, r Reply, got string, err error) (Reply, error) {
	if err != nil {
		return Reply{}, fmt.Errorf("sched: %w", err)
	}
	if r.Type != got {
		return Reply{}, fmt.Errorf("sched: reply from %s says %q in a %q envelope", peer, r.Type, got)
	}
	return r, nil
}
