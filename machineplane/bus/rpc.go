package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/mycelfabric/mycel/securityplane/envelope"
)

// Endpoint is one node's end of a signed protocol on the bus: everything
// it sends is a signed envelope (JSON payload) sealed with the node's key,
// and everything it receives is opened with the protocol's own Opener,
// which checks signature, sender, skew and replay. It is the one place
// that seals, opens, checks who answered and decodes; membership,
// replication and placement all talk through it.
type Endpoint struct {
	Conn Conn
	// Key signs; the sender of every envelope is its peer ID.
	Key crypto.PrivKey
	// Opener checks what is received (each protocol keeps its own, with
	// its own replay cache).
	Opener *envelope.Opener
	// Now stamps envelopes; nil means time.Now.
	Now func() time.Time
}

// Handler answers one message: in is the opened envelope, or nil with why
// it was refused. It returns the reply's envelope type and value, or ""
// to send no reply (always the case for a message without one).
type Handler func(in *envelope.Envelope, refused error) (replyType string, reply any)

// Seal marshals v as JSON and wraps it as a signed message of type typ.
func (e *Endpoint) Seal(typ string, v any) ([]byte, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("bus: encode %s: %w", typ, err)
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	return envelope.Seal(e.Key, typ, payload, now())
}

// Publish seals v as typ and publishes it on subject.
func (e *Endpoint) Publish(subject, typ string, v any) error {
	data, err := e.Seal(typ, v)
	if err != nil {
		return err
	}
	return e.Conn.Publish(subject, data)
}

// Request seals v as typ, sends it on subject to peer and waits for the
// reply, which must open, come from peer and decode into out. It returns
// the reply's envelope type.
func (e *Endpoint) Request(ctx context.Context, subject, peer, typ string, v, out any) (string, error) {
	data, err := e.Seal(typ, v)
	if err != nil {
		return "", err
	}
	return e.Ask(ctx, subject, peer, typ, data, out)
}

// Ask sends a message already sealed as typ (by Seal) on subject to peer
// and waits for the reply,
// which must open, come from peer and decode into out. It returns the
// reply's envelope type.
func (e *Endpoint) Ask(ctx context.Context, subject, peer, typ string, sealed []byte, out any) (string, error) {
	raw, err := e.Conn.Request(ctx, subject, sealed)
	if err != nil {
		return "", fmt.Errorf("%s to %s: %w", typ, peer, err)
	}
	in, err := e.Opener.Open(raw)
	if err != nil {
		return "", fmt.Errorf("reply from %s: %w", peer, err)
	}
	if in.Sender != peer {
		return "", fmt.Errorf("bus: %s answered for %s", in.Sender, peer)
	}
	if err := json.Unmarshal(in.Payload, out); err != nil {
		return "", fmt.Errorf("bus: malformed %s reply from %s: %w", in.Type, peer, err)
	}
	return in.Type, nil
}

// Handle subscribes fn to subject: every message is opened and passed to
// fn, and fn's reply, if any, is sealed and sent back. Messages are
// handled one at a time, in order.
func (e *Endpoint) Handle(subject string, fn Handler) (Subscription, error) {
	return e.Conn.Subscribe(subject, func(m Msg) { e.serve(m, fn) })
}

// HandleConcurrently is Handle with up to n messages handled at once, in
// no particular order: for requests that do not depend on each other,
// from several askers (anti-entropy steps), that would otherwise each
// wait for the others' answers. Past n, the subscription's pending
// messages queue.
func (e *Endpoint) HandleConcurrently(subject string, n int, fn Handler) (Subscription, error) {
	slots := make(chan struct{}, n)
	return e.Conn.Subscribe(subject, func(m Msg) {
		slots <- struct{}{}
		go func() {
			defer func() { <-slots }()
			e.serve(m, fn)
		}()
	})
}

func (e *Endpoint) serve(m Msg, fn Handler) {
	in, err := e.Opener.Open(m.Data)
	if err != nil {
		in = nil
	}
	typ, reply := fn(in, err)
	if typ == "" || m.Reply == "" {
		return
	}
	if data, err := e.Seal(typ, reply); err == nil {
		e.Conn.Publish(m.Reply, data)
	}
}

// Decode decodes the payload of a message that must be of type typ.
func Decode(in *envelope.Envelope, typ string, v any) error {
	if in.Type != typ {
		return fmt.Errorf("bus: got a %q message, want %q", in.Type, typ)
	}
	if err := json.Unmarshal(in.Payload, v); err != nil {
		return fmt.Errorf("bus: malformed %s payload: %w", typ, err)
	}
	return nil
}
