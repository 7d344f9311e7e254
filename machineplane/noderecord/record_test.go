package noderecord

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mycelfabric/mycel/securityplane/ca"
)

type nodeKey struct {
	key crypto.PrivKey
	id  peer.ID
}

func newKey(t *testing.T) nodeKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	return nodeKey{k, id}
}

// svid issues a node SVID for id from a.
func svid(t *testing.T, a *ca.Authority, id peer.ID, ttl time.Duration) [][]byte {
	t.Helper()
	sid, _ := ca.NodeID(a.TrustDomain(), id.String())
	is, err := a.Issue(ca.Request{ID: sid, Client: true, Server: true, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{is.Cert.Raw}
}

func TestVerify(t *testing.T) {
	now := time.Now()
	authority, err := ca.Init(filepath.Join(t.TempDir(), "ca"), "fabric.test")
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := ca.Init(filepath.Join(t.TempDir(), "other"), "fabric.test")
	n, m := newKey(t), newKey(t)
	good := func() *Record {
		return &Record{PeerID: n.id.String(), Name: "node-1", Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}, SVID: svid(t, authority, n.id, time.Hour), Seq: 1, Expires: now.Add(time.Minute).Unix()}
	}
	sign := func(r *Record, k crypto.PrivKey) []byte {
		data, err := Sign(r, k)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	otherTD, _ := ca.Init(filepath.Join(t.TempDir(), "other-td"), "other.test")
	tests := []struct {
		name   string
		key    string
		data   func() []byte
		reason string // Reason's label; "" for a valid record
		msg    string
	}{
		{"valid", Key(n.id), func() []byte { return sign(good(), n.key) }, "", ""},
		{"signed by another peer", Key(n.id), func() []byte { return sign(good(), m.key) }, "bad_signature", "not signed by peer"},
		{"unsigned", Key(n.id), func() []byte { return []byte(`{"payload":"e30="}`) }, "malformed", "not a signed record"},
		{"published under another key", Key(m.id), func() []byte { return sign(good(), n.key) }, "bad_signature", ""},
		{"SVID of another peer", Key(n.id), func() []byte { r := good(); r.SVID = svid(t, authority, m.id, time.Hour); return sign(r, n.key) }, "wrong_svid", "SVID names"},
		{"another CA of the same name", Key(n.id), func() []byte { r := good(); r.SVID = svid(t, foreign, n.id, time.Hour); return sign(r, n.key) }, "foreign_trust_domain", "does not verify"},
		{"foreign trust domain", Key(n.id), func() []byte { r := good(); r.SVID = svid(t, otherTD, n.id, time.Hour); return sign(r, n.key) }, "foreign_trust_domain", "does not verify"},
		{"SVID expired", Key(n.id), func() []byte { r := good(); r.SVID = svid(t, authority, n.id, time.Millisecond); return sign(r, n.key) }, "svid_expired", "valid"},
		{"record expired", Key(n.id), func() []byte { r := good(); r.Expires = now.Add(-time.Second).Unix(); return sign(r, n.key) }, "expired", ""},
		{"oversized", Key(n.id), func() []byte { return append(sign(good(), n.key), make([]byte, MaxSize)...) }, "oversized", "exceeds"},
		{"garbage", Key(n.id), func() []byte { return []byte("\x00\x01not json") }, "malformed", ""},
		{"bad key", "/mycel-node/nope", func() []byte { return sign(good(), n.key) }, "malformed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.data()
			// An SVID issued for a millisecond has expired a second later.
			v := &Verifier{Bundle: authority.Bundle(), Now: func() time.Time { return now.Add(time.Second) }}
			_, err := v.Verify(tt.key, data)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("rejected a valid record: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || Reason(err) != tt.reason || !strings.Contains(fmtErr(err), tt.msg) {
				t.Fatalf("got %v (reason %q), want reason %q containing %q", err, Reason(err), tt.reason, tt.msg)
			}
		})
	}
	if _, err := Sign(&Record{PeerID: n.id.String(), Labels: map[string]string{"big": strings.Repeat("x", MaxSize)}}, n.key); !errors.Is(err, ErrInvalid) {
		t.Fatalf("signing an oversized record: %v", err)
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestSelectPrefersNewestValid(t *testing.T) {
	now := time.Now()
	authority, _ := ca.Init(filepath.Join(t.TempDir(), "ca"), "fabric.test")
	n, m := newKey(t), newKey(t)
	val := Validator{Verifier: &Verifier{Bundle: authority.Bundle(), Now: func() time.Time { return now }}}
	rec := func(seq uint64, k crypto.PrivKey) []byte {
		data, _ := Sign(&Record{PeerID: n.id.String(), SVID: svid(t, authority, n.id, time.Hour), Seq: seq, Expires: now.Add(time.Minute).Unix()}, k)
		return data
	}
	i, err := val.Select(Key(n.id), [][]byte{rec(3, n.key), rec(9, m.key), rec(5, n.key), rec(4, n.key)})
	if err != nil || i != 2 {
		t.Fatalf("Select = %d, %v; want 2 (seq 5; the forged seq 9 ignored)", i, err)
	}
}

func TestCapabilities(t *testing.T) {
	r := &Record{Region: "eu-west-2", Versions: map[string]string{"arch": "amd64", "runtime": "podman/5.8.3", "mycel": "0.1.0"}, Labels: map[string]string{"gpu": "a100"}}
	var got []string
	for _, c := range r.Capabilities() {
		got = append(got, c[0]+"="+c[1])
	}
	want := "arch=amd64,region=eu-west-2,runtime=podman/5.8,runtime=podman,mycel=0.1.0,label:gpu=a100"
	if strings.Join(got, ",") != want {
		t.Fatalf("capabilities %v, want %s", got, want)
	}
	if CapabilityKey("runtime", "podman/5.8") == CapabilityKey("runtime", "podman/4.3") {
		t.Fatal("different versions share a key")
	}
	// The key format is a wire protocol: nodes of every version must agree.
	if got := CapabilityKey("gpu", "a100").String(); got != "bafkreieglhxtdb6ietfqpzuhfqhgnn3r5zkqsbwgseuya33ctdxru7ptti" {
		t.Fatalf("capability key of gpu=a100 is %s; the format changed", got)
	}
}
