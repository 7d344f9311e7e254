package join

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/mycelfabric/mycel/securityplane/ca"
)

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

type issuerFixture struct {
	dir string
	ca  *ca.Authority
	h   host.Host
}

func newIssuer(t *testing.T) *issuerFixture {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	a, err := ca.Init(dir, "fabric.test")
	if err != nil {
		t.Fatal(err)
	}
	h := newHost(t)
	sid, _ := ca.NodeID(a.TrustDomain(), h.ID().String())
	own, err := a.Issue(ca.Request{ID: sid, Server: true, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	(&Issuer{CA: a, Dir: dir, TTL: time.Hour, SVID: func() [][]byte { return [][]byte{own.Cert.Raw} }}).Register(h)
	addrs, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	var ss []string
	for _, a := range addrs {
		ss = append(ss, a.String())
	}
	if err := ca.RegisterIssuer(dir, h.ID().String(), ss); err != nil {
		t.Fatal(err)
	}
	return &issuerFixture{dir: dir, ca: a, h: h}
}

func TestJoinAndRenew(t *testing.T) {
	is := newIssuer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := is.ca.CreateToken(is.dir, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	joiner := newHost(t)
	creds, err := Join(ctx, joiner, tok, Subject{IPs: []string{"127.0.0.2"}})
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := x509svid.Verify(creds.Chain, is.ca.Bundle())
	want, _ := ca.NodeID(is.ca.TrustDomain(), joiner.ID().String())
	if err != nil || id != want || len(creds.Chain[0].IPAddresses) != 1 {
		t.Fatalf("joined SVID %v %v, want %s with the requested IP SAN", id, err, want)
	}

	// The join brings the fabric's data keys.
	ring, err := ca.DataKeys(is.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds.DataKeys) != 1 || creds.DataKeys[0].ID != ring.Keys()[0].ID {
		t.Fatalf("joined with data keys %v, want the CA directory's %v", creds.DataKeys, ring.Keys())
	}

	// The token had one use.
	if _, err := Join(ctx, newHost(t), tok, Subject{}); !errors.Is(err, ca.ErrTokenUsed) {
		t.Fatalf("second join with a one-use token: %v", err)
	}

	// Renewal with the current SVID, from the issuer.
	ai := peer.AddrInfo{ID: is.h.ID(), Addrs: is.h.Addrs()}
	renewed, err := Renew(ctx, joiner, ai, creds, Subject{})
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Chain[0].SerialNumber.Cmp(creds.Chain[0].SerialNumber) == 0 || renewed.Key == creds.Key {
		t.Fatal("renewal returned the same certificate or key")
	}
	// A key rotated in since reaches the node with its next renewal.
	rotated, err := ca.RotateDataKey(is.dir, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	renewed, err = Renew(ctx, joiner, ai, renewed, Subject{})
	if err != nil {
		t.Fatal(err)
	}
	if len(renewed.DataKeys) != 2 || renewed.DataKeys[1].ID != rotated.ID {
		t.Fatalf("renewal after a rotation brought data keys %v, want the old one and %s", renewed.DataKeys, rotated.ID)
	}
	// Another peer cannot renew with the joiner's SVID.
	if _, err := Renew(ctx, newHost(t), ai, creds, Subject{}); err == nil {
		t.Fatal("a peer renewed an SVID that names another peer")
	}
}

func TestJoinRefusals(t *testing.T) {
	is := newIssuer(t)
	other := newIssuer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A token pinning another CA: the issuer is not trusted, no secret is sent.
	tok, _ := is.ca.CreateToken(is.dir, time.Hour, 5)
	wrongCA := tok
	wrongCA.CA = other.ca.Fingerprint()
	if _, err := Join(ctx, newHost(t), wrongCA, Subject{}); !errors.Is(err, ErrPinMismatch) {
		t.Fatalf("wrong CA pin: %v", err)
	}
	// A token pointing at an issuer of another CA (a forged token).
	forged := tok
	forged.Issuers = nil
	addrs, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: other.h.ID(), Addrs: other.h.Addrs()})
	forged.Issuers = []string{addrs[0].String()}
	if _, err := Join(ctx, newHost(t), forged, Subject{}); !errors.Is(err, ErrPinMismatch) {
		t.Fatalf("issuer of another CA: %v", err)
	}
	// A wrong secret.
	bad := tok
	bad.Secret = "00"
	if _, err := Join(ctx, newHost(t), bad, Subject{}); !errors.Is(err, ca.ErrTokenInvalid) {
		t.Fatalf("wrong secret: %v", err)
	}
	// The refused attempts did not consume the token.
	if _, err := Join(ctx, newHost(t), tok, Subject{}); err != nil {
		t.Fatalf("valid join after refusals: %v", err)
	}
}
