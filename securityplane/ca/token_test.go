package ca

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTokens(t *testing.T) {
	dir := t.TempDir()
	a, err := Init(dir, "fabric.test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateToken(dir, time.Hour, 1); !errors.Is(err, ErrNoIssuers) {
		t.Fatalf("token without issuers: %v", err)
	}
	RegisterIssuer(dir, "12D3KooWissuer", []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWissuer"})
	tok, err := a.CreateToken(dir, time.Hour, 2)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseToken(tok.String())
	if err != nil || parsed.ID != tok.ID || parsed.CA != a.Fingerprint() || len(parsed.Issuers) != 1 {
		t.Fatalf("round trip: %+v %v", parsed, err)
	}
	if err := a.RedeemToken(dir, tok.ID, "wrong"); !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("wrong secret: %v", err)
	}
	// Two uses, redeemed concurrently three times: exactly two succeed.
	var wg sync.WaitGroup
	results := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); results <- a.RedeemToken(dir, tok.ID, tok.Secret) }()
	}
	wg.Wait()
	close(results)
	ok, used := 0, 0
	for err := range results {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrTokenUsed):
			used++
		default:
			t.Fatalf("redeem: %v", err)
		}
	}
	if ok != 2 || used != 1 {
		t.Fatalf("%d redeemed, %d refused as used; want 2 and 1", ok, used)
	}

	short, _ := a.CreateToken(dir, time.Minute, 1)
	a.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if err := a.RedeemToken(dir, short.ID, short.Secret); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired token: %v", err)
	}
	for _, bad := range []string{"", "mycel1.", "mycel1.!!!", "kubeadm.abc", tok.String()[:20]} {
		if _, err := ParseToken(bad); !errors.Is(err, ErrTokenInvalid) {
			t.Errorf("ParseToken(%q): %v", bad, err)
		}
	}
	if err := a.RedeemToken(dir, "../../etc/pw", "x"); !errors.Is(err, ErrTokenInvalid) || strings.Contains(err.Error(), "etc") {
		t.Fatalf("path-like id: %v", err)
	}
}

// FuzzParseToken feeds arbitrary strings to the join-token parser (users
// paste tokens into --join): it returns a token or ErrTokenInvalid, and a
// token it accepts encodes back to one that parses the same.
func FuzzParseToken(f *testing.F) {
	f.Add(Token{Version: 1, Issuers: []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"}, ID: "0123456789abcdef", Secret: "s3cr3t", CA: "sha256:00"}.String())
	f.Add("mycel1.")
	f.Add("mycel1.eyJ2IjoxfQ")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrTokenInvalid) {
				t.Fatalf("error %v does not wrap ErrTokenInvalid", err)
			}
			return
		}
		again, err := ParseToken(tok.String())
		if err != nil || !reflect.DeepEqual(again, tok) {
			t.Fatalf("round trip of %+v: %+v, %v", tok, again, err)
		}
	})
}
