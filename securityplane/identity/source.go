package identity

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/securityplane/datakey"
	"github.com/mycelfabric/mycel/securityplane/join"
)

// Credential files in a node's data dir. A node that joined with a token
// keeps its SVID key and the trust bundle there, so it restarts without one.
const (
	SVIDFile    = "svid.pem"
	SVIDKeyFile = "svid.key"
	BundleFile  = "bundle.pem"
	IssuersFile = "issuers"
)

// ErrNotJoined means the node holds no CA and has no credentials of an
// earlier join.
var ErrNotJoined = errors.New("identity: this node holds no CA and has not joined: pass --ca-dir, or --join with a token from `mycel token create`")

// Config says where a node's identity comes from.
type Config struct {
	// DataDir keeps the SVID, its key, the bundle and the issuers.
	DataDir string
	// CADir holds the trust domain's CA; a node with it issues its own
	// SVID and serves joins. Exclusive with Join.
	CADir string
	// Join is a join token, redeemed on first start only.
	Join string
	// PeerID is the node's libp2p peer ID, the last segment of its SPIFFE
	// ID; Name and APIHost go into its SANs.
	PeerID, Name, APIHost string
	// Host is the node's libp2p host: joins and renewals go through it,
	// and a CA holder serves joins on it.
	Host host.Host
	// Addrs are the node's libp2p addresses, which a CA holder registers
	// as an issuer's (tokens name them).
	Addrs []string
	// TTL is the lifetime of the SVIDs a CA holder issues itself.
	TTL time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// svid is one issued certificate and its key.
type svid struct {
	key  crypto.Signer
	cert *x509.Certificate
}

// issueFunc obtains a fresh SVID and the fabric's data keys (from the local
// CA, or from an issuer).
type issueFunc func(ctx context.Context, current *svid) (*svid, []datakey.Key, error)

// Source holds the node's current SVID. It implements x509svid.Source, so
// TLS configurations built from it follow every renewal. It is safe for
// concurrent use.
type Source struct {
	cfg       Config
	log       *slog.Logger
	bundle    *x509bundle.Bundle
	issue     issueFunc
	authority *ca.Authority // when the node holds the CA
	issuers   []string      // for a joined node: where it renews
	keys      *datakey.Ring

	mu  sync.Mutex
	cur *svid
	tls *tls.Certificate
}

var _ x509svid.Source = (*Source)(nil)

// Open gives the node its SVID: from the CA it holds (it then also serves
// joins on cfg.Host and registers as an issuer), by redeeming cfg.Join, or
// from what an earlier join left in the data dir.
func Open(ctx context.Context, cfg Config) (*Source, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{cfg: cfg, log: cfg.Logger, keys: datakey.NewRing(nil)}
	if cfg.CADir != "" {
		return s, s.openAuthority(ctx)
	}
	cur, bundle, issuers, err := loadJoined(cfg.DataDir, s.keys)
	switch {
	case err == nil:
		// Restart of a joined node: its kept credentials win over a token,
		// so the same command line can start it again.
		if cfg.Join != "" {
			s.log.Info("already joined; ignoring --join", "trustDomain", bundle.TrustDomain().Name())
		}
	case cfg.Join != "":
		if cur, bundle, issuers, err = s.join(ctx); err != nil {
			return nil, err
		}
	case errors.Is(err, fs.ErrNotExist):
		return nil, ErrNotJoined
	default:
		return nil, err
	}
	s.bundle, s.issuers = bundle, issuers
	s.issue = remoteIssuer(cfg.Host, bundle, issuers, cfg.Name, cfg.APIHost)
	if err := s.set(cur); err != nil {
		return nil, err
	}
	if len(s.keys.Keys()) == 0 {
		// Joined before data keys existed: fetch them with a renewal now.
		if err := s.Renew(ctx); err != nil {
			s.log.Warn("fetch the fabric's data keys; Secrets stay unreadable on this node until the next renewal", "err", err)
		}
	}
	return s, nil
}

func (s *Source) openAuthority(ctx context.Context) error {
	cfg := s.cfg
	a, err := ca.Load(cfg.CADir)
	if err != nil {
		return err
	}
	s.authority, s.bundle = a, a.Bundle()
	s.issue = localIssuer(a, cfg.CADir, cfg.PeerID, cfg.Name, cfg.APIHost, cfg.TTL)
	first, keys, err := s.issue(ctx, nil)
	if err != nil {
		return err
	}
	s.keys.Add(keys...)
	if err := s.set(first); err != nil {
		return err
	}
	if err := ca.WriteFile(filepath.Join(cfg.DataDir, BundleFile), ca.EncodeCerts(a.Root()), 0o644); err != nil {
		return err
	}
	(&join.Issuer{CA: a, Dir: cfg.CADir, TTL: cfg.TTL, Log: s.log.With("component", "issuer"),
		SVID: func() [][]byte { return [][]byte{s.current().cert.Raw} }}).Register(cfg.Host)
	return ca.RegisterIssuer(cfg.CADir, cfg.PeerID, cfg.Addrs)
}

// join redeems the token and keeps the bundle and the issuers.
func (s *Source) join(ctx context.Context) (*svid, *x509bundle.Bundle, []string, error) {
	cfg := s.cfg
	tok, err := ca.ParseToken(cfg.Join)
	if err != nil {
		return nil, nil, nil, err
	}
	jctx, cancel := context.WithTimeout(ctx, time.Minute)
	creds, err := join.Join(jctx, cfg.Host, tok, subject(cfg.Name, cfg.APIHost))
	cancel()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := ca.WriteFile(filepath.Join(cfg.DataDir, BundleFile), ca.EncodeCerts(creds.Bundle.X509Authorities()...), 0o644); err != nil {
		return nil, nil, nil, err
	}
	if err := ca.WriteFile(filepath.Join(cfg.DataDir, IssuersFile), []byte(strings.Join(tok.Issuers, "\n")+"\n"), 0o644); err != nil {
		return nil, nil, nil, err
	}
	s.log.Info("joined the trust domain", "trustDomain", creds.Bundle.TrustDomain().Name(), "notAfter", creds.Chain[0].NotAfter)
	if err := s.addKeys(creds.DataKeys); err != nil {
		return nil, nil, nil, err
	}
	return &svid{key: creds.Key, cert: creds.Chain[0]}, creds.Bundle, tok.Issuers, nil
}

// Close stops serving as an issuer (tokens created later do not name this
// node).
func (s *Source) Close() {
	if s.authority != nil {
		ca.UnregisterIssuer(s.cfg.CADir, s.cfg.PeerID)
	}
}

// Bundle is the trust domain's bundle.
func (s *Source) Bundle() *x509bundle.Bundle { return s.bundle }

// Issuers are the issuers a joined node renews at (nil for a CA holder).
func (s *Source) Issuers() []string { return s.issuers }

// Certificate is the current SVID's leaf certificate.
func (s *Source) Certificate() *x509.Certificate { return s.current().cert }

// TLSCertificate is the current SVID as a TLS certificate.
func (s *Source) TLSCertificate() *tls.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tls
}

// GetX509SVID implements x509svid.Source with the current SVID.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) {
	cur := s.current()
	id, err := x509svid.IDFromCert(cur.cert)
	if err != nil {
		return nil, err
	}
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cur.cert}, PrivateKey: cur.key}, nil
}

func (s *Source) current() *svid {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// set installs and persists an SVID.
func (s *Source) set(next *svid) error {
	keyPEM, err := ca.EncodeKey(next.key)
	if err != nil {
		return err
	}
	if err := ca.WriteFile(filepath.Join(s.cfg.DataDir, SVIDKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	if err := ca.WriteFile(filepath.Join(s.cfg.DataDir, SVIDFile), ca.EncodeCerts(next.cert), 0o644); err != nil {
		return err
	}
	s.mu.Lock()
	s.cur, s.tls = next, &tls.Certificate{Certificate: [][]byte{next.cert.Raw}, PrivateKey: next.key, Leaf: next.cert}
	s.mu.Unlock()
	return nil
}

// DataKeys is the fabric's data key ring as this node holds it; renewals
// add the keys rotated in since.
func (s *Source) DataKeys() *datakey.Ring { return s.keys }

// addKeys adds keys to the ring and, for a joined node, keeps the ring in
// its data dir (a CA holder reads the CA directory's).
func (s *Source) addKeys(keys []datakey.Key) error {
	if !s.keys.Add(keys...) || s.authority != nil {
		return nil
	}
	raw, err := s.keys.Marshal()
	if err != nil {
		return err
	}
	return ca.WriteFile(filepath.Join(s.cfg.DataDir, datakey.File), raw, 0o600)
}

// Renew obtains and installs a fresh SVID now, and the data keys rotated in
// since the last one.
func (s *Source) Renew(ctx context.Context) error {
	next, keys, err := s.issue(ctx, s.current())
	if err != nil {
		return err
	}
	if err := s.set(next); err != nil {
		return err
	}
	if err := s.addKeys(keys); err != nil {
		return err
	}
	s.log.Info("renewed node SVID", "notAfter", next.cert.NotAfter)
	return nil
}

// Rotate renews the SVID at two thirds of its lifetime, retrying every
// minute on failure, until ctx is done.
func (s *Source) Rotate(ctx context.Context) {
	for {
		cur := s.current().cert
		wait := time.Until(cur.NotBefore.Add(cur.NotAfter.Sub(cur.NotBefore) * 2 / 3))
		if !sleep(ctx, max(wait, time.Second)) {
			return
		}
		if err := s.Renew(ctx); err != nil {
			s.log.Error("renew node SVID; retrying in a minute", "err", err, "expires", cur.NotAfter)
			if !sleep(ctx, time.Minute) {
				return
			}
		}
	}
}

// sleep waits d or until ctx is done, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// HasCredentials reports whether dataDir holds the credentials of an earlier
// join (a restarted node needs no new token).
func HasCredentials(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, SVIDFile))
	return err == nil
}

// loadJoined reads the credentials a node kept from an earlier join: its
// SVID (if still valid), its key, the bundle, the issuers, and the data keys
// (into keys).
func loadJoined(dataDir string, keys *datakey.Ring) (*svid, *x509bundle.Bundle, []string, error) {
	certs, err := ca.ReadCerts(filepath.Join(dataDir, SVIDFile))
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ca.ReadKey(filepath.Join(dataDir, SVIDKeyFile))
	if err != nil {
		return nil, nil, nil, err
	}
	roots, err := ca.ReadCerts(filepath.Join(dataDir, BundleFile))
	if err != nil {
		return nil, nil, nil, err
	}
	id, err := x509svid.IDFromCert(certs[0])
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", SVIDFile, err)
	}
	bundle := x509bundle.FromX509Authorities(id.TrustDomain(), roots)
	if _, _, err := x509svid.Verify(certs, bundle); err != nil {
		return nil, nil, nil, fmt.Errorf("the SVID kept in %s no longer verifies (%v): join again with a new token (--join)", dataDir, err)
	}
	raw, err := os.ReadFile(filepath.Join(dataDir, IssuersFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil, err
	}
	switch ring, err := datakey.Load(filepath.Join(dataDir, datakey.File), nil); {
	case err == nil:
		keys.Add(ring.Keys()...)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, nil, nil, err
	}
	return &svid{key: key, cert: certs[0]}, bundle, strings.Fields(string(raw)), nil
}
