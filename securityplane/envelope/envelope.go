// Package envelope signs and checks the control messages nodes send each
// other. Every message carries its type, sender (peer ID), timestamp, a
// random nonce and the payload, signed with the sender's ed25519 libp2p key.
// Receivers drop malformed and oversized messages, bad signatures, unknown
// senders, timestamps outside a skew window, and replays (a bounded cache of
// recent nonces), and count each reason.
package envelope

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// Version is the envelope format version. Version 2 is a binary encoding
// whose signed part is the message's own bytes (version 1 was JSON, signed
// over its re-encoding); a node accepts only its own version.
const Version = 2

// domain starts every version-2 envelope, and so every signed message.
const domain = "mycel-envelope/v2\n"

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

// Envelope is a signed message. On the wire (Encode) it is the domain
// separator "mycel-envelope/v2\n"; Type, Sender and Nonce, each a uvarint
// length and its bytes; Timestamp as 8 big-endian bytes; Payload as a
// uvarint length and its bytes; and last Signature, a uvarint length and its
// bytes, over everything before it. The sender signs the bytes it sends;
// the receiver checks the fields it decoded, laid out again the same way
// (a copy, not a second encoding format), so what it verifies is always
// what it then reads.
type Envelope struct {
	Version   int
	Type      string
	Sender    string
	Timestamp int64 // Unix nanoseconds
	Nonce     []byte
	Payload   []byte
	Signature []byte

	sender peer.ID // Sender, decoded by Parse
}

// signedBytes is what the signature covers: the encoding up to the
// signature.
func (e *Envelope) signedBytes() []byte {
	b := make([]byte, 0, len(domain)+5*binary.MaxVarintLen64+8+len(e.Type)+len(e.Sender)+len(e.Nonce)+len(e.Payload)+len(e.Signature))
	b = append(b, domain...)
	for _, f := range [][]byte{[]byte(e.Type), []byte(e.Sender), e.Nonce} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(e.Timestamp))
	b = binary.AppendUvarint(b, uint64(len(e.Payload)))
	return append(b, e.Payload...)
}

// Encode is e's wire encoding. Only tests and tools that build or alter
// envelopes need it; Seal encodes as it signs.
func (e *Envelope) Encode() []byte {
	return appendSignature(e.signedBytes(), e.Signature)
}

func appendSignature(signed, sig []byte) []byte {
	return append(binary.AppendUvarint(signed, uint64(len(sig))), sig...)
}

// Decode reads the wire encoding, checking its shape only (no signature,
// sender or freshness check: that is Opener's). Tests and tools use it to
// look into envelopes.
func Decode(data []byte) (*Envelope, error) {
	rest, ok := bytes.CutPrefix(data, []byte(domain))
	if !ok {
		return nil, fmt.Errorf("%w: not a version-%d envelope", ErrMalformed, Version)
	}
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, fmt.Errorf("%w: truncated", ErrMalformed)
		}
		f := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		return f, nil
	}
	e := &Envelope{Version: Version}
	var f [3][]byte
	var err error
	for i := range f {
		if f[i], err = field(); err != nil {
			return nil, err
		}
	}
	e.Type, e.Sender, e.Nonce = string(f[0]), string(f[1]), f[2]
	if len(rest) < 8 {
		return nil, fmt.Errorf("%w: truncated", ErrMalformed)
	}
	e.Timestamp, rest = int64(binary.BigEndian.Uint64(rest)), rest[8:]
	if e.Payload, err = field(); err != nil {
		return nil, err
	}
	if e.Signature, err = field(); err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the signature", ErrMalformed, len(rest))
	}
	return e, nil
}

// senders caches the peer ID (as a string) of each key that seals, which
// would otherwise be derived and base58-encoded for every message. A
// process holds a handful of keys (a thousand in a simulation).
var senders sync.Map // crypto.PrivKey → string

func senderOf(key crypto.PrivKey) (string, error) {
	if s, ok := senders.Load(key); ok {
		return s.(string), nil
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("envelope: %w", err)
	}
	senders.Store(key, id.String())
	return id.String(), nil
}

// Seal wraps payload as a message of typ from the holder of key.
func Seal(key crypto.PrivKey, typ string, payload []byte, now time.Time) ([]byte, error) {
	sender, err := senderOf(key)
	if err != nil {
		return nil, err
	}
	e := &Envelope{Version: Version, Type: typ, Sender: sender, Timestamp: now.UnixNano(), Nonce: make([]byte, 16), Payload: payload}
	if _, err := rand.Read(e.Nonce); err != nil {
		return nil, err
	}
	signed := e.signedBytes()
	sig, err := key.Sign(signed)
	if err != nil {
		return nil, fmt.Errorf("envelope: sign: %w", err)
	}
	return appendSignature(signed, sig), nil
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
// rejection reasons: Parse, then Verify.
func (o *Opener) Open(data []byte) (*Envelope, error) {
	e, err := o.parse(data)
	if err == nil {
		err = o.verify(e)
	}
	if err != nil {
		o.count(err)
		return nil, err
	}
	return e, nil
}

// Parse checks data's size and shape only and returns the envelope, which
// must not be acted on before Verify accepts it. A receiver that may never
// use a message (the owner's losing bids) parses it and verifies it only
// when it does.
func (o *Opener) Parse(data []byte) (*Envelope, error) {
	e, err := o.parse(data)
	o.count(err)
	return e, err
}

// Verify checks a parsed envelope's signature, sender, timestamp and nonce
// (recording the nonce, so a second Verify of it is a replay).
func (o *Opener) Verify(e *Envelope) error {
	err := o.verify(e)
	o.count(err)
	return err
}

func (o *Opener) count(err error) {
	if err == nil || o.Rejected == nil {
		return
	}
	for reason, label := range reasons {
		if errors.Is(err, reason) {
			o.Rejected.WithLabelValues(label).Inc()
		}
	}
}

func (o *Opener) parse(data []byte) (*Envelope, error) {
	maxSize := o.MaxSize
	if maxSize == 0 {
		maxSize = DefaultMaxSize
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrOversized, len(data), maxSize)
	}
	e, err := Decode(data)
	if err != nil {
		return nil, err
	}
	if e.Type == "" || len(e.Nonce) < 16 || len(e.Signature) == 0 {
		return nil, fmt.Errorf("%w: type %q, %d-byte nonce, %d-byte signature", ErrMalformed, e.Type, len(e.Nonce), len(e.Signature))
	}
	if e.sender, err = peer.Decode(e.Sender); err != nil {
		return nil, fmt.Errorf("%w: sender %q: %v", ErrMalformed, e.Sender, err)
	}
	return e, nil
}

func (o *Opener) verify(e *Envelope) error {
	pub, err := e.sender.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: sender %s has no embedded key", ErrMalformed, e.sender)
	}
	if ok, err := pub.Verify(e.signedBytes(), e.Signature); err != nil || !ok {
		return fmt.Errorf("%w: from %s", ErrBadSignature, e.sender)
	}
	if o.Known == nil || !o.Known(e.sender) {
		return fmt.Errorf("%w: %s", ErrUnknownSender, e.sender)
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
		return fmt.Errorf("%w: %s off (window %s)", ErrSkew, d.Round(time.Millisecond), window)
	}
	return o.remember(e.Sender+string(e.Nonce), e.Timestamp, now.Add(-window).UnixNano())
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
