package noderecord

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mycelfabric/mycel/securityplane/ca"
)

// FuzzVerify feeds arbitrary bytes to the record verifier, as DHT peers and
// announcements deliver them: it never panics, and what it accepts is
// signed by the key's peer and carries an SVID of the trust domain naming
// it.
func FuzzVerify(f *testing.F) {
	a, err := ca.Init(filepath.Join(f.TempDir(), "ca"), "fuzz.test")
	if err != nil {
		f.Fatal(err)
	}
	key, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(key)
	sid, _ := ca.NodeID(a.TrustDomain(), id.String())
	is, err := a.Issue(ca.Request{ID: sid, Client: true, Server: true, TTL: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	good, err := Sign(&Record{PeerID: id.String(), Name: "n", SVID: [][]byte{is.Cert.Raw}, Seq: 1, Expires: time.Now().Add(time.Hour).Unix()}, key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(Key(id), good)
	f.Add(Key(id), []byte(`{"payload":"e30=","signature":""}`))
	f.Add("/mycel-node/x", []byte("{"))
	v := &Verifier{Bundle: a.Bundle()}
	f.Fuzz(func(t *testing.T, key string, data []byte) {
		r, err := v.Verify(key, data)
		if err != nil {
			return
		}
		if key != Key(id) || r.PeerID != id.String() {
			t.Fatalf("accepted a record of %s under %s", r.PeerID, key)
		}
	})
}
