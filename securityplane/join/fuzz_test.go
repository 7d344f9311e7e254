package join

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mycelfabric/mycel/securityplane/ca"
)

// FuzzJoinRequest feeds arbitrary bytes to an issuer as the joiner's
// request, as they arrive on the join stream: nothing panics, and nothing
// is issued without a token or SVID the issuer accepts.
func FuzzJoinRequest(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "ca")
	a, err := ca.Init(dir, "fuzz.test")
	if err != nil {
		f.Fatal(err)
	}
	i := &Issuer{CA: a, Dir: dir, TTL: time.Hour}
	key, _, _ := crypto.GenerateEd25519Key(nil)
	remote, _ := peer.IDFromPrivateKey(key)
	for _, seed := range []request{
		{TokenID: "0123456789abcdef", Secret: "00", CSR: []byte{0x30, 0x03}},
		{SVID: [][]byte{{0x30, 0x82, 0x01}}, CSR: []byte("not der")},
		{},
	} {
		b, _ := json.Marshal(seed)
		f.Add(append(b, '\n'))
	}
	f.Add([]byte(`{"tokenID":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req request
		if err := readMsg(bytes.NewReader(data), &req); err != nil {
			return
		}
		if chain, err := i.issue(remote, req); err == nil {
			t.Fatalf("issued %d certificates for a request the fuzzer made up: %+v", len(chain), req)
		}
	})
}

// FuzzIssuerMessages feeds arbitrary bytes to the joiner's decoding of the
// issuer's hello and response: it returns an error or a message, never
// panics.
func FuzzIssuerMessages(f *testing.F) {
	f.Add([]byte(`{"bundle":["MAA="],"svid":["MAA="]}` + "\n"))
	f.Add([]byte(`{"svid":["MAA="]}` + "\n"))
	f.Add([]byte(`{"error":"token expired"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var h hello
		if readMsg(bytes.NewReader(data), &h) == nil {
			parseChain(h.Bundle)
			parseChain(h.SVID)
		}
		var resp response
		if readMsg(bytes.NewReader(data), &resp) == nil && resp.Error != "" {
			remoteError(resp.Error)
		}
	})
}
