// Package envelope signs and checks the control messages nodes send each
// other. Every message carries its type, sender (peer ID), timestamp, a
// random nonce and the payload, signed with the sender's ed25519 libp2p key.
// Receivers drop malformed and oversized messages, bad signatures, unknown
// senders, timestamps outside a skew window, and replays (a bounded cache of
// recent nonces), and count each reason.
package envelope

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// Version is the envelope format version.
const Version = 1

// Defaults for an Opener.
const (
	DefaultMaxSize = 1 << 20
	DefaultWindow  = 30 * time.Second
	DefaultReplay  = 100000
)

// Rejection reasons; each wraps ErrRejected and names a metric label.
var (
	ErrRejected      = errors.New("envelope: rejected")
	ErrMalformed     = fmt.Errorf("%w: malformed", ErrRejected)
	ErrOversized     = fmt.Errorf("%w: oversized", ErrRejected)
	ErrBadSignature  = fmt.Errorf("%w: bad signature", ErrRejected)
	ErrUnknownSender = fmt.Errorf("%w: unknown sender", ErrRejected)
	ErrSkew          = fmt.Errorf("%w: timestamp outside the skew window", ErrRejected)
	ErrReplay        = fmt.Errorf("%w: replayed", ErrRejected)
)

var reasons = map[error]string{
	ErrMalformed: "malformed", ErrOversized: "oversized", ErrBadSignature: "bad_signature",
	ErrUnknownSender: "unknown_sender", ErrSkew: "skew", ErrReplay: "replay",
}

// Envelope is a signed message.
type Envelope struct {
	Version   int    `json:"v"`
	Type      string `json:"type"`
	Sender    string `json:"sender"`
	Timestamp int64  `json:"ts"` // Unix nanoseconds
	Nonce     []byte `json:"nonce"`
	Payload   []byte `json:"payload"`
	Signature []byte `json:"sig,omitempty"`
}

// signedBytes is what the signature covers: the envelope without its
// signature, prefixed with a domain separator.
func (e *Envelope) signedBytes() ([]byte, error) {
	c := *e
	c.Signature = nil
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	return append([]byte("mycel-envelope/v1\n"), b...), nil
}

// Seal wraps payload as a message of typ from the holder of key.
func Seal(key crypto.PrivKey, typ string, payload []byte, now time.Time) ([]byte, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	e := &Envelope{Version: Version, Type: typ, Sender: id.String(), Timestamp: now.UnixNano(), Nonce: make([]byte, 16), Payload: payload}
	if _, err := rand.Read(e.Nonce); err != nil {
		return nil, err
	}
	msg, err := e.signedBytes()
	if err != nil {
		return nil, err
	}
	if e.Signature, err = key.Sign(msg); err != nil {
		return nil, fmt.Errorf("envelope: sign: %w", err)
	}
	return json.Marshal(e)
}

// Opener checks received envelopes. It is safe for concurrent use.
type Opener struct {
	// Known reports whether a sender belongs to the fabric; required.
	Known func(peer.ID) bool
	// Window is the accepted clock skew either way; zero means DefaultWindow.
	Window time.Duration
	// MaxSize bounds an encoded envelope; zero means DefaultMaxSize.
	MaxSize int
	// Replay bounds the nonces remembered; zero means DefaultReplay.
	Replay int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rejected, if set, counts rejections by reason (label "reason").
	Rejected *prometheus.CounterVec

	mu    sync.Mutex
	seen  map[string]int64 // sender+nonce → timestamp
	order []seenEntry      // insertion order, for eviction
	floor int64            // timestamps at or below this can no longer be checked for replay
}

type seenEntry struct {
	key string
	ts  int64
}

// NewRejectedCounter returns the counter Opener.Rejected expects, registered with reg.
func NewRejectedCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mycel_envelope_rejected_total",
		Help: "Control messages dropped, by reason (malformed, oversized, bad_signature, unknown_sender, skew, replay).",
	}, []string{"reason"})
	return c, reg.Register(c)
}

// Open checks data and returns the envelope, or an error wrapping one of the
// rejection reasons.
func (o *Opener) Open(data []byte) (*Envelope, error) {
	e, err := o.open(data)
	if err != nil && o.Rejected != nil {
		for reason, label := range reasons {
			if errors.Is(err, reason) {
				o.Rejected.WithLabelValues(label).Inc()
			}
		}
	}
	return e, err
}

func (o *Opener) open(data []byte) (*Envelope, error) {
	maxSize := o.MaxSize
	if maxSize == 0 {
		maxSize = DefaultMaxSize
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrOversized, len(data), maxSize)
	}
	var e Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if e.Version != Version || e.Type == "" || len(e.Nonce) < 16 || len(e.Signature) == 0 {
		return nil, fmt.Errorf("%w: version %d, type %q, %d-byte nonce", ErrMalformed, e.Version, e.Type, len(e.Nonce))
	}
	sender, err := peer.Decode(e.Sender)
	if err != nil {
		return nil, fmt.Errorf("%w: sender %q: %v", ErrMalformed, e.Sender, err)
	}
	pub, err := sender.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: sender %s has no embedded key", ErrMalformed, sender)
	}
	msg, err := e.signedBytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if ok, err := pub.Verify(msg, e.Signature); err != nil || !ok {
		return nil, fmt.Errorf("%w: from %s", ErrBadSignature, sender)
	}
	if o.Known == nil || !o.Known(sender) {
		return nil, fmt.Errorf("%w: %s", ErrUnknownSender, sender)
	}
	window := o.Window
	if window == 0 {
		window = DefaultWindow
	}
	now := time.Now()
	if o.Now != nil {
		now = o.Now()
	}
	if d := now.Sub(time.Unix(0, e.Timestamp)); d > window || d < -window {
		return nil, fmt.Errorf("%w: %s off (window %s)", ErrSkew, d.Round(time.Millisecond), window)
	}
	if err := o.remember(sender.String()+string(e.Nonce), e.Timestamp, now.Add(-window).UnixNano()); err != nil {
		return nil, err
	}
	return &e, nil
}

// remember records a nonce, failing if it was seen. Entries older than the
// window are forgotten (their messages fail the skew check anyway); when the
// cache is full, the oldest entries go and messages as old as they are
// rejected, so a replay can never slip through an evicted entry.
func (o *Opener) remember(key string, ts, expired int64) error {
	limit := o.Replay
	if limit == 0 {
		limit = DefaultReplay
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seen == nil {
		o.seen = map[string]int64{}
	}
	if _, dup := o.seen[key]; dup || ts <= o.floor {
		return fmt.Errorf("%w: nonce already seen (or too old to tell)", ErrReplay)
	}
	for len(o.order) > 0 && (o.order[0].ts < expired || len(o.order) >= limit) {
		old := o.order[0]
		if old.ts >= expired && old.ts > o.floor {
			o.floor = old.ts
		}
		delete(o.seen, old.key)
		o.order[0] = seenEntry{}
		o.order = o.order[1:]
	}
	o.seen[key] = ts
	o.order = append(o.order, seenEntry{key, ts})
	return nil
}
