package envelope

import (
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func key(t *testing.T) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	return k, id
}

func TestOpen(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	alice, aliceID := key(t)
	mallory, _ := key(t)
	rejected, _ := NewRejectedCounter(prometheus.NewRegistry())
	o := &Opener{Known: func(id peer.ID) bool { return id == aliceID }, Now: func() time.Time { return now }, Rejected: rejected, MaxSize: 4096}
	seal := func(k crypto.PrivKey, at time.Time) []byte {
		b, err := Seal(k, "tender", []byte(`{"pod":"web"}`), at)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tampered := func() []byte {
		e, _ := Decode(seal(alice, now))
		e.Payload = []byte(`{"pod":"evil"}`)
		return e.Encode()
	}
	retyped := func() []byte {
		e, _ := Decode(seal(alice, now))
		e.Type = "award" // every field is signed, not only the payload
		return e.Encode()
	}
	version1 := func() []byte {
		return []byte(`{"v":1,"type":"tender","sender":"` + aliceID.String() + `","ts":0,"nonce":"AAAAAAAAAAAAAAAAAAAAAA==","payload":"","sig":"AA=="}`)
	}
	unsigned := func() []byte {
		e, _ := Decode(seal(alice, now))
		e.Signature = nil
		return e.Encode()
	}
	impersonated := func() []byte {
		e, _ := Decode(seal(mallory, now))
		e.Sender = aliceID.String() // claims to be alice, signed by mallory
		return e.Encode()
	}
	replayed := seal(alice, now)
	if _, err := o.Open(replayed); err != nil {
		t.Fatalf("first delivery rejected: %v", err)
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"valid", seal(alice, now), nil},
		{"replayed", replayed, ErrReplay},
		{"tampered payload", tampered(), ErrBadSignature},
		{"tampered type", retyped(), ErrBadSignature},
		{"format version 1", version1(), ErrMalformed},
		{"impersonated sender", impersonated(), ErrBadSignature},
		{"unknown sender", seal(mallory, now), ErrUnknownSender},
		{"from the future", seal(alice, now.Add(time.Minute)), ErrSkew},
		{"too old", seal(alice, now.Add(-time.Minute)), ErrSkew},
		{"within the window", seal(alice, now.Add(-20*time.Second)), nil},
		{"oversized", make([]byte, 5000), ErrOversized},
		{"not an envelope", []byte("{"), ErrMalformed},
		{"truncated", seal(alice, now)[:60], ErrMalformed},
		{"unsigned", unsigned(), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := o.Open(tt.data)
			if tt.want == nil {
				if err != nil || e.Type != "tender" || e.Sender != aliceID.String() {
					t.Fatalf("got %v %+v", err, e)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	for reason, want := range map[string]float64{"replay": 1, "bad_signature": 3, "unknown_sender": 1, "skew": 2, "oversized": 1, "malformed": 4} {
		if got := testutil.ToFloat64(rejected.WithLabelValues(reason)); got != want {
			t.Errorf("rejected{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

// TestReplayCacheIsBounded: a full cache forgets its oldest nonces but never
// lets one of them replay.
func TestReplayCacheIsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	alice, aliceID := key(t)
	o := &Opener{Known: func(id peer.ID) bool { return id == aliceID }, Now: func() time.Time { return now }, Replay: 10}
	var first []byte
	for i := range 25 {
		b, _ := Seal(alice, "hb", nil, now.Add(time.Duration(i-25)*time.Millisecond))
		if i == 0 {
			first = b
		}
		if _, err := o.Open(b); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if len(o.seen) > 10 || len(o.order) > 10 {
		t.Fatalf("cache holds %d entries, limit 10", len(o.seen))
	}
	if _, err := o.Open(first); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay of an evicted nonce: %v", err)
	}
	// Entries older than the window are dropped as time passes.
	now = now.Add(time.Minute)
	b, _ := Seal(alice, "hb", nil, now)
	if _, err := o.Open(b); err != nil {
		t.Fatal(err)
	}
	if len(o.seen) != 1 {
		t.Fatalf("%d entries after the window passed, want 1", len(o.seen))
	}
}

func FuzzOpen(f *testing.F) {
	alice, aliceID := func() (crypto.PrivKey, peer.ID) {
		k, _, _ := crypto.GenerateEd25519Key(nil)
		id, _ := peer.IDFromPrivateKey(k)
		return k, id
	}()
	good, _ := Seal(alice, "t", []byte("p"), time.Now())
	f.Add(good)
	f.Add([]byte(`{"v":1}`))
	f.Add(good[:len(good)-10])
	o := &Opener{Known: func(id peer.ID) bool { return id == aliceID }}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := o.Open(data)
		if err == nil && e == nil {
			t.Fatal("no envelope and no error")
		}
		if err != nil && !errors.Is(err, ErrRejected) {
			t.Fatalf("error %v does not wrap ErrRejected", err)
		}
	})
}

// BenchmarkSealOpen is one message of a negotiation's size (a tender's
// 1.5 KB payload), sealed by its sender and opened by its receiver.
func BenchmarkSealOpen(b *testing.B) {
	k, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	o := &Opener{Known: func(p peer.ID) bool { return p == id }}
	payload := make([]byte, 1500)
	b.ReportAllocs()
	for b.Loop() {
		data, err := Seal(k, "sched.tender", payload, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := o.Open(data); err != nil {
			b.Fatal(err)
		}
	}
}
