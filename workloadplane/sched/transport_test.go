package sched

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mycelfabric/mycel/machineplane/bus"
	"github.com/mycelfabric/mycel/machineplane/bus/bustest"
	"github.com/mycelfabric/mycel/securityplane/envelope"
)

// TestForgedTopBidIsNotAwarded: a reply is verified before the owner uses
// it, so a bid with the best score whose signature is not its sender's is
// dropped (counted as no answer and as a bad signature) and the next bid
// wins; the losing bids are never needed.
func TestForgedTopBidIsNotAwarded(t *testing.T) {
	ctx := context.Background()
	b := bustest.New()
	keys, ids := map[string]crypto.PrivKey{}, map[string]string{}
	for _, n := range []string{"owner", "honest", "forger", "mallory"} {
		k, _, _ := crypto.GenerateEd25519Key(nil)
		id, _ := peer.IDFromPrivateKey(k)
		keys[n], ids[n] = k, id.String()
	}
	known := func(id peer.ID) bool { return id.String() != ids["mallory"] }
	rejected, _ := envelope.NewRejectedCounter(prometheus.NewRegistry())
	ownerTr := &BusTransport{Conn: b.Conn("owner"), Key: keys["owner"], Self: ids["owner"], Opener: &envelope.Opener{Known: known, Rejected: rejected}}

	bidder, err := NewBidder(BidderConfig{Policy: acceptAll{}, Facts: func() (Facts, error) {
		return Facts{Node: "honest", Allocatable: Resources{MilliCPU: 1000, MemoryBytes: 1 << 30, Pods: 10}}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	honest := &BusTransport{Conn: b.Conn("honest"), Key: keys["honest"], Self: ids["honest"], Opener: &envelope.Opener{Known: known}, Bidder: bidder}
	if _, err := honest.endpoint().Handle(fmt.Sprintf(SubjectFmt, ids["honest"]), func(in *envelope.Envelope, refused error) (string, any) {
		return honest.answer(ctx, in, refused)
	}); err != nil {
		t.Fatal(err)
	}
	// The forger answers for its node with a bid of the best score, signed
	// by another key.
	forger := b.Conn("forger")
	if _, err := forger.Subscribe(fmt.Sprintf(SubjectFmt, ids["forger"]), func(m bus.Msg) {
		in, err := (&envelope.Opener{Known: known}).Open(m.Data)
		if err != nil {
			t.Errorf("forger cannot read the tender: %v", err)
			return
		}
		var tender Tender
		json.Unmarshal(in.Payload, &tender)
		payload, _ := json.Marshal(Reply{Tender: tender.ID, Node: "forger", Type: TypeBid, Score: 1e6})
		sealed, _ := envelope.Seal(keys["mallory"], TypeBid, payload, time.Now())
		e, _ := envelope.Decode(sealed)
		e.Sender = ids["forger"]
		forger.Publish(m.Reply, e.Encode())
	}); err != nil {
		t.Fatal(err)
	}

	placer, err := NewPlacer(PlacerConfig{Self: ids["owner"], Transport: ownerTr})
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", UID: "u1"}}
	out := placer.Place(ctx, pod, []Candidate{{Node: "forger", Peer: ids["forger"]}, {Node: "honest", Peer: ids["honest"]}}, Spread{})
	if out.Node != "honest" || out.Reasons["node(s) did not answer the tender"] != 1 {
		t.Fatalf("placed on %q, reasons %v; want honest, with the forged bid counted as no answer", out.Node, out.Reasons)
	}
	if got := testutil.ToFloat64(rejected.WithLabelValues("bad_signature")); got != 1 {
		t.Fatalf("owner counted %v bad signatures, want 1", got)
	}
}
