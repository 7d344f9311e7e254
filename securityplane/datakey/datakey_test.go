package datakey

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestSealOpen(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	clock := func() time.Time { return now }
	first, err := New(t0, t0)
	if err != nil {
		t.Fatal(err)
	}
	ring := NewRing(clock, first)
	secret := []byte(`{"data":{"password":"aHVudGVyMg=="}}`)
	ad := []byte("secrets/default/db")

	sealed, err := ring.Seal(secret, ad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("aHVudGVyMg")) {
		t.Fatal("the sealed value contains the plaintext")
	}
	if got, err := ring.Open(sealed, ad); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	// Bound to its store key: moved under another, it does not open.
	if _, err := ring.Open(sealed, []byte("secrets/default/other")); err == nil {
		t.Fatal("a sealed value opened under another store key")
	}
	// Tampered: does not open.
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := ring.Open(tampered, ad); err == nil {
		t.Fatal("a tampered value opened")
	}
	if _, err := ring.Open(secret, ad); !errors.Is(err, ErrNotSealed) {
		t.Fatalf("Open(plaintext) = %v, want ErrNotSealed", err)
	}

	// A rotated key seals only once active; the old one still opens.
	second, _ := New(t0, t0.Add(DefaultActivation))
	ring.Add(second)
	before, _ := ring.Seal(secret, ad)
	if !bytes.Contains(before, []byte(first.ID)) {
		t.Fatal("a key that is not active yet sealed")
	}
	now = t0.Add(DefaultActivation)
	after, _ := ring.Seal(secret, ad)
	if !bytes.Contains(after, []byte(second.ID)) {
		t.Fatal("the newest active key did not seal")
	}
	for _, v := range [][]byte{sealed, before, after} {
		if _, err := ring.Open(v, ad); err != nil {
			t.Fatalf("after rotation: %v", err)
		}
	}
	// A node without the new key says what to do.
	if _, err := NewRing(clock, first).Open(after, ad); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Open with a key not held = %v, want ErrUnknownKey", err)
	}
	if _, err := NewRing(clock).Seal(secret, ad); !errors.Is(err, ErrEmpty) {
		t.Fatalf("Seal with no keys = %v, want ErrEmpty", err)
	}
}

func FuzzOpen(f *testing.F) {
	k, _ := New(time.Now(), time.Now())
	ring := NewRing(nil, k)
	sealed, _ := ring.Seal([]byte("x"), nil)
	f.Add(sealed)
	f.Add([]byte(prefix + k.ID + ":"))
	f.Fuzz(func(t *testing.T, b []byte) { ring.Open(b, nil) })
}
