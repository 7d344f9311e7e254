// Package join is how a machine gets its node SVID without holding the CA:
// it redeems a join token at an issuer (a node that holds the CA) over a
// libp2p stream, pinning the CA by the token's fingerprint, and later renews
// its SVID at any issuer by presenting the one it has.
//
// The libp2p secure channel authenticates both peers' IDs; the issuer binds
// the SVID it issues to the requester's peer ID, so a joiner proves
// possession of its node key by opening the stream and of its SVID key by
// signing the certificate request.
package join

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/securityplane/datakey"
)

// Protocol is the libp2p protocol of joins and renewals.
const Protocol = protocol.ID("/mycel/join/1.0.0")

// maxMessage bounds every message of the protocol.
const maxMessage = 64 << 10

// ErrPinMismatch means the issuer's CA is not the one the token pins.
var ErrPinMismatch = errors.New("join: the issuer's CA does not match the token's fingerprint (wrong or forged issuer)")

// hello is the issuer's first message: who it is and its trust bundle.
type hello struct {
	Bundle [][]byte `json:"bundle"`
	SVID   [][]byte `json:"svid"`
}

// request asks for an SVID: with a token (join) or the current SVID (renew).
type request struct {
	TokenID string   `json:"tokenID,omitempty"`
	Secret  string   `json:"secret,omitempty"`
	SVID    [][]byte `json:"svid,omitempty"`
	CSR     []byte   `json:"csr"`
}

type response struct {
	SVID [][]byte `json:"svid,omitempty"`
	// DataKeys are the fabric's data keys, sent only with an SVID (to a
	// proven node of the trust domain, inside the secure channel).
	DataKeys []datakey.Key `json:"dataKeys,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// Issuer answers joins and renewals for a CA.
type Issuer struct {
	CA *ca.Authority
	// Dir is the CA directory holding the tokens and the data keys.
	Dir string
	// SVID returns the issuer's own current SVID chain.
	SVID func() [][]byte
	// TTL is the lifetime of issued SVIDs.
	TTL time.Duration
	Log *slog.Logger
}

// Register serves the protocol on h.
func (i *Issuer) Register(h host.Host) { h.SetStreamHandler(Protocol, i.handle) }

func (i *Issuer) handle(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	remote := s.Conn().RemotePeer()
	if err := writeMsg(s, hello{Bundle: [][]byte{i.CA.Root().Raw}, SVID: i.SVID()}); err != nil {
		return
	}
	var req request
	if err := readMsg(s, &req); err != nil {
		return
	}
	chain, err := i.issue(remote, req)
	resp := response{SVID: chain}
	if err == nil {
		var ring *datakey.Ring
		if ring, err = ca.DataKeys(i.Dir, nil); err == nil {
			resp.DataKeys = ring.Keys()
		} else {
			resp.SVID, err = nil, fmt.Errorf("read the fabric's data keys: %w", err)
		}
	}
	if err != nil {
		resp.Error = err.Error()
		if i.Log != nil {
			i.Log.Warn("refused SVID request", "peer", remote.String(), "err", err)
		}
	}
	writeMsg(s, resp)
}

func (i *Issuer) issue(remote peer.ID, req request) ([][]byte, error) {
	switch {
	case req.TokenID != "":
		if err := i.CA.RedeemToken(i.Dir, req.TokenID, req.Secret); err != nil {
			return nil, err
		}
	case len(req.SVID) > 0:
		// Renewal: the current SVID must be valid and name the requester.
		certs, err := parseChain(req.SVID)
		if err != nil {
			return nil, err
		}
		id, _, err := x509svid.Verify(certs, i.CA.Bundle())
		want, _ := ca.NodeID(i.CA.TrustDomain(), remote.String())
		if err != nil || id != want {
			return nil, fmt.Errorf("renewal needs a valid SVID naming %s", want)
		}
	default:
		return nil, errors.New("a join token or the current SVID is required")
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err == nil {
		err = csr.CheckSignature()
	}
	if err != nil {
		return nil, fmt.Errorf("certificate request: %v", err)
	}
	id, err := ca.NodeID(i.CA.TrustDomain(), remote.String())
	if err != nil {
		return nil, err
	}
	is, err := i.CA.Issue(ca.Request{ID: id, CommonName: remote.String(), PublicKey: csr.PublicKey, TTL: i.TTL, Server: true, Client: true,
		DNSNames: csr.DNSNames, IPs: csr.IPAddresses})
	if err != nil {
		return nil, err
	}
	return [][]byte{is.Cert.Raw}, nil
}

// Credentials are what a join or renewal yields.
type Credentials struct {
	Key    crypto.Signer
	Chain  []*x509.Certificate
	Bundle *x509bundle.Bundle
	// DataKeys are the fabric's data keys as the issuer holds them.
	DataKeys []datakey.Key
}

// Subject asks for SANs besides the SPIFFE ID (the node's API host).
type Subject struct {
	DNSNames []string
	IPs      []string
}

// Join redeems token at its issuers, trying each until one answers.
func Join(ctx context.Context, h host.Host, token ca.Token, sub Subject) (*Credentials, error) {
	var errs []error
	for _, addr := range token.Issuers {
		ai, err := peer.AddrInfoFromString(addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("issuer %q: %w", addr, err))
			continue
		}
		creds, err := exchange(ctx, h, *ai, func(hello) (request, error) {
			return request{TokenID: token.ID, Secret: token.Secret}, nil
		}, token.CA, nil, sub)
		if err == nil {
			return creds, nil
		}
		// A refusal about the token or the CA is final; other issuers would
		// say the same.
		if errors.Is(err, ErrPinMismatch) || errors.Is(err, ca.ErrTokenInvalid) || errors.Is(err, ca.ErrTokenUsed) || errors.Is(err, ca.ErrTokenExpired) {
			return nil, err
		}
		errs = append(errs, fmt.Errorf("issuer %s: %w", ai.ID, err))
	}
	return nil, fmt.Errorf("join: no issuer granted an SVID: %w", errors.Join(errs...))
}

// Renew gets a fresh SVID from the issuer at ai by presenting the current one.
func Renew(ctx context.Context, h host.Host, ai peer.AddrInfo, current *Credentials, sub Subject) (*Credentials, error) {
	raw := make([][]byte, len(current.Chain))
	for i, c := range current.Chain {
		raw[i] = c.Raw
	}
	return exchange(ctx, h, ai, func(hello) (request, error) { return request{SVID: raw}, nil }, "", current.Bundle, sub)
}

// exchange runs one request: it checks the issuer (by fingerprint pin or by
// a known bundle), sends a CSR for a fresh key, and checks the result.
func exchange(ctx context.Context, h host.Host, ai peer.AddrInfo, build func(hello) (request, error), pin string, known *x509bundle.Bundle, sub Subject) (*Credentials, error) {
	if err := h.Connect(ctx, ai); err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	s, err := h.NewStream(ctx, ai.ID, Protocol)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	var hi hello
	if err := readMsg(s, &hi); err != nil {
		return nil, err
	}
	roots, err := parseChain(hi.Bundle)
	if err != nil || len(roots) == 0 {
		return nil, fmt.Errorf("issuer sent no usable bundle: %v", err)
	}
	bundle := known
	if pin != "" {
		if ca.Fingerprint(roots[0]) != pin {
			return nil, ErrPinMismatch
		}
		issuerSVID, err := parseChain(hi.SVID)
		if err != nil {
			return nil, err
		}
		id, err := x509svid.IDFromCert(issuerSVID[0])
		if err != nil {
			return nil, fmt.Errorf("issuer SVID: %w", err)
		}
		bundle = x509bundle.FromX509Authorities(id.TrustDomain(), roots)
	}
	// The issuer must hold an SVID of the trust domain naming the peer we
	// reached (libp2p authenticated its peer ID).
	issuerSVID, err := parseChain(hi.SVID)
	if err != nil {
		return nil, err
	}
	id, _, err := x509svid.Verify(issuerSVID, bundle)
	want, _ := ca.NodeID(bundle.TrustDomain(), ai.ID.String())
	if err != nil || id != want {
		return nil, fmt.Errorf("%w: issuer SVID does not name %s", ErrPinMismatch, want)
	}

	req, err := build(hi)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.CertificateRequest{DNSNames: sub.DNSNames}
	for _, ip := range sub.IPs {
		if p := parseIP(ip); p != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, p)
		}
	}
	if req.CSR, err = x509.CreateCertificateRequest(rand.Reader, tmpl, key); err != nil {
		return nil, err
	}
	if err := writeMsg(s, req); err != nil {
		return nil, err
	}
	var resp response
	if err := readMsg(s, &resp); err != nil {
		return nil, err
	}
	if resp.Error != "" {
		return nil, remoteError(resp.Error)
	}
	chain, err := parseChain(resp.SVID)
	if err != nil || len(chain) == 0 {
		return nil, fmt.Errorf("issuer sent no usable SVID: %v", err)
	}
	got, _, err := x509svid.Verify(chain, bundle)
	mine, _ := ca.NodeID(bundle.TrustDomain(), h.ID().String())
	if err != nil || got != mine {
		return nil, fmt.Errorf("issued SVID does not verify as %s: %v", mine, err)
	}
	if pub, ok := chain[0].PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("issued SVID is not for the requested key")
	}
	return &Credentials{Key: key, Chain: chain, Bundle: bundle, DataKeys: resp.DataKeys}, nil
}

// remoteError restores the token sentinels from an issuer's message.
func remoteError(msg string) error {
	for _, e := range []error{ca.ErrTokenExpired, ca.ErrTokenUsed, ca.ErrTokenInvalid} {
		if msg == e.Error() {
			return e
		}
	}
	return fmt.Errorf("issuer refused: %s", msg)
}

func parseChain(ders [][]byte) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(ders))
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func writeMsg(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func readMsg(r io.Reader, v any) error {
	dec := json.NewDecoder(io.LimitReader(r, maxMessage))
	return dec.Decode(v)
}

func parseIP(s string) []byte {
	ip := net.ParseIP(s)
	if ip == nil {
		return nil
	}
	return ip
}
