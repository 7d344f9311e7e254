package noderecord

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Namespace is the DHT namespace of node records: keys are
// "/mycel-node/<peerID>".
const Namespace = "mycel-node"

// Version is the NodeRecord format version.
const Version = 1

// MaxSize bounds an encoded signed record.
const MaxSize = 16 << 10

// ErrInvalid wraps every reason a record is rejected; each reason below
// wraps it and names a metric label (Reason).
var ErrInvalid = errors.New("noderecord: invalid record")

// Rejection reasons.
var (
	ErrOversized    = fmt.Errorf("%w: oversized", ErrInvalid)
	ErrMalformed    = fmt.Errorf("%w: malformed", ErrInvalid)
	ErrBadSignature = fmt.Errorf("%w: bad signature", ErrInvalid)
	// ErrForeignSVID: the SVID chain does not verify against the fabric's
	// trust bundle (another trust domain, or another CA).
	ErrForeignSVID = fmt.Errorf("%w: SVID not of this trust domain", ErrInvalid)
	// ErrWrongSVID: the SVID verifies but names someone else.
	ErrWrongSVID = fmt.Errorf("%w: SVID of another identity", ErrInvalid)
	// ErrSVIDExpired: the SVID is past its NotAfter (or before NotBefore).
	ErrSVIDExpired = fmt.Errorf("%w: SVID expired", ErrInvalid)
	// ErrExpired means the record's own expiry has passed.
	ErrExpired = fmt.Errorf("%w: record expired", ErrInvalid)
)

var reasons = []struct {
	err   error
	label string
}{
	{ErrOversized, "oversized"}, {ErrMalformed, "malformed"}, {ErrBadSignature, "bad_signature"},
	{ErrForeignSVID, "foreign_trust_domain"}, {ErrWrongSVID, "wrong_svid"}, {ErrSVIDExpired, "svid_expired"},
	{ErrExpired, "expired"},
}

// Reason is the metric label of a rejection ("" for nil, "invalid" for an
// error of no listed reason).
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "invalid"
}

// Key is the DHT key of a peer's record.
func Key(id peer.ID) string { return "/" + Namespace + "/" + id.String() }

// Record is what a node says about itself.
type Record struct {
	Version int    `json:"version"`
	PeerID  string `json:"peerID"`
	// Name is the node's API name (a DNS-1123 subdomain).
	Name string `json:"name"`
	// Addrs are the node's libp2p multiaddrs.
	Addrs []string `json:"addrs"`
	// SVID is the node's X.509-SVID chain (DER, leaf first).
	SVID [][]byte `json:"svid"`
	// Region, Zone and Labels locate and describe the node.
	Region string            `json:"region,omitempty"`
	Zone   string            `json:"zone,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// Capacity and Allocatable are resource quantities ("cpu": "2", "memory": "24Gi").
	Capacity    map[string]string `json:"capacity,omitempty"`
	Allocatable map[string]string `json:"allocatable,omitempty"`
	// Versions names software versions: "mycel", "runtime" (name/version,
	// e.g. "podman/4.3.1"), "os", "arch".
	Versions map[string]string `json:"versions,omitempty"`
	// APIURL, NATSURL and RaftAddr are the node's service endpoints.
	APIURL   string `json:"apiURL,omitempty"`
	NATSURL  string `json:"natsURL,omitempty"`
	RaftAddr string `json:"raftAddr,omitempty"`
	// Seq increases with every record the node publishes.
	Seq uint64 `json:"seq"`
	// Expires is when the record stops being valid (Unix seconds).
	Expires int64 `json:"expires"`
}

// Signed is the wire form: the record's JSON and the peer key's signature
// over "mycel-node-record:" + payload.
type Signed struct {
	Payload   []byte `json:"payload"`
	Signature []byte `json:"signature"`
}

const sigPrefix = "mycel-node-record:"

// Sign encodes and signs r with the node's libp2p key.
func Sign(r *Record, key crypto.PrivKey) ([]byte, error) {
	r.Version = Version
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(append([]byte(sigPrefix), payload...))
	if err != nil {
		return nil, fmt.Errorf("noderecord: sign: %w", err)
	}
	out, err := json.Marshal(Signed{Payload: payload, Signature: sig})
	if err != nil {
		return nil, err
	}
	if len(out) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d (too many labels or addresses?)", ErrOversized, len(out), MaxSize)
	}
	return out, nil
}

// Verifier checks signed records against a trust bundle.
type Verifier struct {
	// Bundle verifies the records' SVIDs; its trust domain is the fabric's.
	Bundle *x509bundle.Bundle
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (v *Verifier) now() time.Time {
	if v.Now == nil {
		return time.Now()
	}
	return v.Now()
}

func invalid(reason error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", reason, fmt.Sprintf(format, args...))
}

// Verify decodes a signed record published under key and checks it: size,
// format, the signature by the key's peer, the SVID chain (it must verify
// against the bundle and name spiffe://TD/node/<peerID>), and expiry.
func (v *Verifier) Verify(key string, data []byte) (*Record, error) {
	if len(data) > MaxSize {
		return nil, invalid(ErrOversized, "%d bytes exceeds %d", len(data), MaxSize)
	}
	rest, ok := strings.CutPrefix(key, "/"+Namespace+"/")
	if !ok {
		return nil, invalid(ErrMalformed, "key %q is not in /%s/", key, Namespace)
	}
	id, err := peer.Decode(rest)
	if err != nil {
		return nil, invalid(ErrMalformed, "key %q: %v", key, err)
	}
	var s Signed
	if err := json.Unmarshal(data, &s); err != nil || len(s.Signature) == 0 {
		return nil, invalid(ErrMalformed, "not a signed record")
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return nil, invalid(ErrMalformed, "peer %s has no embedded public key: %v", id, err)
	}
	if ok, err := pub.Verify(append([]byte(sigPrefix), s.Payload...), s.Signature); err != nil || !ok {
		return nil, invalid(ErrBadSignature, "not signed by peer %s", id)
	}
	var r Record
	if err := json.Unmarshal(s.Payload, &r); err != nil {
		return nil, invalid(ErrMalformed, "payload: %v", err)
	}
	if r.Version != Version {
		return nil, invalid(ErrMalformed, "version %d, want %d", r.Version, Version)
	}
	if r.PeerID != id.String() {
		return nil, invalid(ErrMalformed, "record names peer %s but is published under %s", r.PeerID, id)
	}
	if len(r.SVID) == 0 {
		return nil, invalid(ErrMalformed, "no SVID")
	}
	chain := make([]*x509.Certificate, 0, len(r.SVID))
	for _, der := range r.SVID {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, invalid(ErrMalformed, "SVID: %v", err)
		}
		chain = append(chain, c)
	}
	if now := v.now(); now.After(chain[0].NotAfter) || now.Before(chain[0].NotBefore) {
		return nil, invalid(ErrSVIDExpired, "valid %s to %s", chain[0].NotBefore.UTC().Format(time.RFC3339), chain[0].NotAfter.UTC().Format(time.RFC3339))
	}
	svidID, _, err := x509svid.Verify(chain, v.Bundle, x509svid.WithTime(v.now()))
	if err != nil {
		return nil, invalid(ErrForeignSVID, "does not verify in trust domain %s: %v", v.Bundle.TrustDomain(), err)
	}
	want, err := spiffeid.FromSegments(v.Bundle.TrustDomain(), "node", id.String())
	if err != nil || svidID != want {
		return nil, invalid(ErrWrongSVID, "SVID names %s, want %s", svidID, want)
	}
	if v.now().Unix() >= r.Expires {
		return nil, fmt.Errorf("%w: at %s", ErrExpired, time.Unix(r.Expires, 0).UTC().Format(time.RFC3339))
	}
	return &r, nil
}

// Validator is the DHT record validator of the mycel-node namespace.
type Validator struct{ Verifier *Verifier }

// Validate implements record.Validator: nothing unsigned or unverifiable is
// stored.
func (v Validator) Validate(key string, value []byte) error {
	_, err := v.Verifier.Verify(key, value)
	return err
}

// Select implements record.Validator: the valid record with the highest
// sequence wins (the first of equals).
func (v Validator) Select(key string, values [][]byte) (int, error) {
	best, bestSeq := -1, uint64(0)
	for i, val := range values {
		r, err := v.Verifier.Verify(key, val)
		if err != nil {
			continue
		}
		if best < 0 || r.Seq > bestSeq {
			best, bestSeq = i, r.Seq
		}
	}
	if best < 0 {
		return 0, invalid(ErrMalformed, "no valid record among %d", len(values))
	}
	return best, nil
}
