package bus

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/securityplane/envelope"
)

// TestHandleConcurrently: a handler of HandleConcurrently serves a second
// request while the first is still being handled (Handle would hold the
// second until the first was answered).
func TestHandleConcurrently(t *testing.T) {
	a, err := ca.Init(filepath.Join(t.TempDir(), "ca"), "fabric.test")
	if err != nil {
		t.Fatal(err)
	}
	b := startBus(t, a, "n1")
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := peer.IDFromPrivateKey(key)
	ep := &Endpoint{Conn: b.Client(), Key: key, Opener: &envelope.Opener{Known: func(peer.ID) bool { return true }}}
	first, second := make(chan struct{}), make(chan struct{})
	var once sync.Once
	sub, err := ep.HandleConcurrently("mycel.test.rpc", 2, func(in *envelope.Envelope, refused error) (string, any) {
		if refused != nil {
			return "test.reply/v1", "refused"
		}
		if string(in.Payload) == `"second"` {
			once.Do(func() { close(second) })
			return "test.reply/v1", "second"
		}
		close(first)
		select {
		case <-second:
			return "test.reply/v1", "first"
		case <-time.After(5 * time.Second):
			return "test.reply/v1", "the second request was not served while the first was"
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answers := make([]string, 2)
	var wg sync.WaitGroup
	for i, msg := range []string{"first", "second"} {
		wg.Go(func() {
			if _, err := ep.Request(ctx, "mycel.test.rpc", self.String(), "test.ask/v1", msg, &answers[i]); err != nil {
				answers[i] = err.Error()
			}
		})
		if i == 0 {
			<-first // the second is sent while the first is being handled
		}
	}
	wg.Wait()
	if answers[0] != "first" || answers[1] != "second" {
		t.Fatalf("answers %q, want [first second]", answers)
	}
}
