package ca

import (
	"crypto/x509"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func TestInitLoadIssueVerifies(t *testing.T) {
	dir := t.TempDir()
	a, err := Init(dir, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, "example.org"); !errors.Is(err, ErrExists) {
		t.Fatalf("second Init: got %v, want ErrExists", err)
	}
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Fingerprint() != a.Fingerprint() || b.TrustDomain() != a.TrustDomain() {
		t.Fatal("loaded CA differs from created CA")
	}
	if a.Root().PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("root key algorithm %v, want ECDSA", a.Root().PublicKeyAlgorithm)
	}

	id, _ := NodeID(a.TrustDomain(), "12D3KooWabc")
	is, err := b.Issue(Request{ID: id, Server: true, Client: true, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := is.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	svid, err := x509svid.Parse(is.CertPEM(), keyPEM)
	if err != nil {
		t.Fatalf("go-spiffe rejects issued SVID: %v", err)
	}
	if svid.ID != id {
		t.Fatalf("SVID ID %s, want %s", svid.ID, id)
	}
	got, _, err := x509svid.Verify([]*x509.Certificate{is.Cert}, a.Bundle())
	if err != nil || got != id {
		t.Fatalf("Verify: %v %v", got, err)
	}
}

func TestVerifyRejectsForeignAndExpired(t *testing.T) {
	a, err := Init(t.TempDir(), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	other, err := Init(t.TempDir(), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := UserID(other.TrustDomain(), "mallory")
	forged, err := other.Issue(Request{ID: id, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify([]*x509.Certificate{forged.Cert}, a.Bundle()); err == nil {
		t.Fatal("certificate from another root with the same trust domain name verified")
	}

	a.now = func() time.Time { return time.Now().Add(-48 * time.Hour) }
	uid, _ := UserID(a.TrustDomain(), "alice")
	old, err := a.Issue(Request{ID: uid, Client: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify([]*x509.Certificate{old.Cert}, a.Bundle()); err == nil {
		t.Fatal("expired certificate verified")
	}

	foreign := spiffeid.RequireFromString("spiffe://evil.org/user/x")
	if _, err := a.Issue(Request{ID: foreign}); err == nil {
		t.Fatal("issued an ID outside the trust domain")
	}
	var _ x509bundle.Source = a.Bundle()
}

func TestInitRejectsBadTrustDomain(t *testing.T) {
	if _, err := Init(t.TempDir(), "Not A Domain!"); err == nil {
		t.Fatal("accepted invalid trust domain")
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNoCA) {
		t.Fatalf("Load of empty dir: %v, want ErrNoCA", err)
	}
}

func TestKubeconfigRefusesAnExpiredCertificate(t *testing.T) {
	a, err := Init(filepath.Join(t.TempDir(), "ca"), "fabric.test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Kubeconfig("alice", nil, -time.Hour, KubeconfigContext{Name: "x", Server: "https://127.0.0.1:1"}); err == nil || !strings.Contains(err.Error(), "--ttl must be positive") {
		t.Fatalf("kubeconfig with a negative ttl: %v", err)
	}
}
