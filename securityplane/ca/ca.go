package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Files inside a CA directory.
const (
	CertFile        = "ca.crt"
	KeyFile         = "ca.key"
	BundleFile      = "bundle.pem"
	TrustDomainFile = "trust-domain"
)

// RootTTL is how long a root created by Init stays valid.
const RootTTL = 10 * 365 * 24 * time.Hour

var (
	// ErrExists is returned by Init when the directory already holds a CA.
	ErrExists = errors.New("ca: a CA already exists in this directory")
	// ErrNoCA is returned by Load when the directory holds no CA.
	ErrNoCA = errors.New("ca: no CA in this directory (create one with `mycel ca init`)")
)

// Authority holds a trust domain's root certificate and key.
type Authority struct {
	td   spiffeid.TrustDomain
	cert *x509.Certificate
	key  crypto.Signer
	now  func() time.Time
}

// Init creates a new trust domain root in dir (created with mode 0700 if
// absent). It refuses to overwrite an existing CA.
func Init(dir, trustDomain string) (*Authority, error) {
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return nil, fmt.Errorf("ca: trust domain %q: %w (use a DNS-like name such as example.org)", trustDomain, err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ca: create %s: %w", dir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: generate root key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Mycel root CA " + td.Name(), Organization: []string{"mycel"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(RootTTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("ca: self-sign root: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse root: %w", err)
	}
	keyPEM, err := EncodeKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := EncodeCerts(cert)
	files := []struct {
		name string
		data []byte
		mode fs.FileMode
	}{
		{KeyFile, keyPEM, 0o600},
		{CertFile, certPEM, 0o644},
		{BundleFile, certPEM, 0o644},
		{TrustDomainFile, []byte(td.Name() + "\n"), 0o644},
	}
	for _, f := range files {
		if err := WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, err
		}
	}
	if _, err := DataKeys(dir, nil); err != nil {
		return nil, err
	}
	return &Authority{td: td, cert: cert, key: key, now: time.Now}, nil
}

// Load reads the CA kept in dir.
func Load(dir string) (*Authority, error) {
	td, err := readTrustDomain(dir)
	if err != nil {
		return nil, err
	}
	certs, err := ReadCerts(filepath.Join(dir, CertFile))
	if err != nil {
		return nil, err
	}
	key, err := ReadKey(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, err
	}
	return &Authority{td: td, cert: certs[0], key: key, now: time.Now}, nil
}

// LoadBundle reads only the trust domain and its bundle from dir: what a
// verifier needs, without the CA key.
func LoadBundle(dir string) (*x509bundle.Bundle, error) {
	td, err := readTrustDomain(dir)
	if err != nil {
		return nil, err
	}
	certs, err := ReadCerts(filepath.Join(dir, BundleFile))
	if err != nil {
		return nil, err
	}
	return x509bundle.FromX509Authorities(td, certs), nil
}

func readTrustDomain(dir string) (spiffeid.TrustDomain, error) {
	path := filepath.Join(dir, TrustDomainFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return spiffeid.TrustDomain{}, fmt.Errorf("%w: %s", ErrNoCA, dir)
	}
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("ca: %w", err)
	}
	td, err := spiffeid.TrustDomainFromString(strings.TrimSpace(string(raw)))
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("ca: %s: %w", path, err)
	}
	return td, nil
}

// WithClock returns a copy of the authority that issues as if the time
// were now() (for tests of expiry and of skewed clocks).
func (a *Authority) WithClock(now func() time.Time) *Authority {
	c := *a
	c.now = now
	return &c
}

// TrustDomain is the trust domain this CA is the root of.
func (a *Authority) TrustDomain() spiffeid.TrustDomain { return a.td }

// Root is the root certificate.
func (a *Authority) Root() *x509.Certificate { return a.cert }

// Bundle is the trust bundle that verifies everything this CA issues.
func (a *Authority) Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(a.td, []*x509.Certificate{a.cert})
}

// Fingerprint is the hex SHA-256 of the root certificate's DER, used to pin
// the CA (as kubeadm pins the CA's hash).
func (a *Authority) Fingerprint() string { return Fingerprint(a.cert) }

// Fingerprint is the hex SHA-256 of a certificate's DER.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Request describes a certificate to issue.
type Request struct {
	// ID is the SPIFFE ID the certificate names; it must be in the CA's trust domain.
	ID spiffeid.ID
	// PublicKey is the subject's key. If nil, Issue generates a P-256 key and
	// returns it.
	PublicKey crypto.PublicKey
	// CommonName goes into the subject (user name for user certificates).
	CommonName string
	// Organizations go into the subject (groups for user certificates).
	Organizations []string
	// DNSNames and IPs are extra SANs for serving certificates.
	DNSNames []string
	IPs      []net.IP
	// TTL is the validity; zero means DefaultTTL.
	TTL time.Duration
	// Server and Client select the extended key usages.
	Server, Client bool
}

// DefaultTTL is the validity of certificates issued without a TTL.
const DefaultTTL = 24 * time.Hour

// Issued is a certificate and, when Issue generated it, its private key.
type Issued struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// CertPEM is the certificate chain (leaf only; the root is the bundle) as PEM.
func (i *Issued) CertPEM() []byte { return EncodeCerts(i.Cert) }

// KeyPEM is the PKCS#8 private key as PEM; nil if Issue did not make the key.
func (i *Issued) KeyPEM() ([]byte, error) {
	if i.Key == nil {
		return nil, nil
	}
	return EncodeKey(i.Key)
}

// Issue signs an X.509-SVID for req.
func (a *Authority) Issue(req Request) (*Issued, error) {
	if req.ID.IsZero() {
		return nil, errors.New("ca: issue: empty SPIFFE ID")
	}
	if req.ID.TrustDomain() != a.td {
		return nil, fmt.Errorf("ca: issue %s: not in trust domain %s", req.ID, a.td)
	}
	out := &Issued{}
	pub := req.PublicKey
	if pub == nil {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("ca: generate key: %w", err)
		}
		out.Key, pub = key, key.Public()
	}
	ttl := req.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	now := a.now()
	notAfter := now.Add(ttl)
	if notAfter.After(a.cert.NotAfter) {
		notAfter = a.cert.NotAfter
	}
	var eku []x509.ExtKeyUsage
	if req.Server {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	if req.Client {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: req.CommonName, Organization: req.Organizations},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{req.ID.URL()},
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, pub, a.key)
	if err != nil {
		return nil, fmt.Errorf("ca: issue %s: %w", req.ID, err)
	}
	out.Cert, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse issued: %w", err)
	}
	return out, nil
}

// NodeID is the SPIFFE ID of the node with the given libp2p peer ID.
func NodeID(td spiffeid.TrustDomain, peerID string) (spiffeid.ID, error) {
	return spiffeid.FromSegments(td, "node", peerID)
}

// UserID is the SPIFFE ID of a user.
func UserID(td spiffeid.TrustDomain, name string) (spiffeid.ID, error) {
	return spiffeid.FromSegments(td, "user", name)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n
}
