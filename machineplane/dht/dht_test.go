package dht

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	mhost "github.com/mycelfabric/mycel/machineplane/host"
	"github.com/mycelfabric/mycel/machineplane/noderecord"
	"github.com/mycelfabric/mycel/securityplane/ca"
)

type testNode struct {
	id  *mhost.Identity
	h   host.Host
	dht *DHT
}

type fabric struct {
	t     testing.TB
	ca    *ca.Authority
	v     *noderecord.Verifier
	nodes []*testNode
}

// newFabric starts n real libp2p hosts on loopback (TCP and QUIC), each
// joining the DHT through node 0.
func newFabric(t testing.TB, n int) *fabric {
	t.Helper()
	a, err := ca.Init(filepath.Join(t.TempDir(), "ca"), "fabric.test")
	if err != nil {
		t.Fatal(err)
	}
	f := &fabric{t: t, ca: a, v: &noderecord.Verifier{Bundle: a.Bundle()}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range n {
		id, err := mhost.LoadOrCreateIdentity(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		h, err := mhost.New(id, []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}, mhost.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		var boot []peer.AddrInfo
		if i > 0 {
			boot = []peer.AddrInfo{{ID: f.nodes[0].h.ID(), Addrs: f.nodes[0].h.Addrs()}}
		}
		d, err := New(ctx, h, Config{Verifier: f.v, Bootstrap: boot})
		if err != nil {
			t.Fatal(err)
		}
		f.nodes = append(f.nodes, &testNode{id: id, h: h, dht: d})
		t.Cleanup(func() { d.Close(); h.Close() })
	}
	return f
}

func (f *fabric) record(n *testNode, seq uint64, labels map[string]string) *noderecord.Record {
	sid, _ := ca.NodeID(f.ca.TrustDomain(), n.h.ID().String())
	is, err := f.ca.Issue(ca.Request{ID: sid, Client: true, Server: true})
	if err != nil {
		f.t.Fatal(err)
	}
	var addrs []string
	for _, a := range n.h.Addrs() {
		addrs = append(addrs, a.String())
	}
	return &noderecord.Record{PeerID: n.h.ID().String(), Name: fmt.Sprintf("node-%d", seq), Addrs: addrs, SVID: [][]byte{is.Cert.Raw},
		Labels: labels, Seq: seq, Expires: time.Now().Add(time.Minute).Unix()}
}

func TestPublishAndLookup(t *testing.T) {
	f := newFabric(t, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, dst := f.nodes[1], f.nodes[4]
	for _, seq := range []uint64{1, 2} {
		signed, err := noderecord.Sign(f.record(src, seq, nil), src.id.Key)
		if err != nil {
			t.Fatal(err)
		}
		if err := src.dht.Publish(ctx, signed); err != nil {
			t.Fatal(err)
		}
	}
	r, err := dst.dht.Lookup(ctx, src.h.ID())
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq != 2 || r.PeerID != src.h.ID().String() {
		t.Fatalf("looked up seq %d of %s, want seq 2 of %s", r.Seq, r.PeerID, src.h.ID())
	}
	if _, err := dst.dht.Lookup(ctx, f.nodes[3].h.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup of a peer that published nothing: %v", err)
	}
}

// TestForgedRecordsAreNotStored runs an attacker whose own DHT accepts
// anything: the honest nodes refuse its forged record for a victim's key.
func TestForgedRecordsAreNotStored(t *testing.T) {
	f := newFabric(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	victim := f.nodes[1]
	signed, _ := noderecord.Sign(f.record(victim, 1, nil), victim.id.Key)
	if err := victim.dht.Publish(ctx, signed); err != nil {
		t.Fatal(err)
	}

	attackerID, _ := mhost.LoadOrCreateIdentity(t.TempDir())
	ah, err := mhost.New(attackerID, []string{"/ip4/127.0.0.1/tcp/0"}, mhost.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	defer ah.Close()
	permissive, err := kaddht.New(ah, kaddht.Mode(kaddht.ModeServer), kaddht.ProtocolPrefix(ProtocolPrefix),
		kaddht.Validator(record.NamespacedValidator{noderecord.Namespace: acceptAll{}}))
	if err != nil {
		t.Fatal(err)
	}
	defer permissive.Close()
	for _, n := range f.nodes {
		if err := ah.Connect(ctx, peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	// A forged record with a higher sequence, signed by the attacker's key.
	forged := f.record(victim, 99, map[string]string{"owned": "yes"})
	forgedBytes, _ := noderecord.Sign(forged, attackerID.Key)
	permissive.PutValue(ctx, noderecord.Key(victim.h.ID()), forgedBytes)

	for i, n := range f.nodes {
		r, err := n.dht.Lookup(ctx, victim.h.ID())
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if r.Seq != 1 || r.Labels["owned"] != "" {
			t.Fatalf("node %d returned the forged record", i)
		}
	}
}

type acceptAll struct{}

func (acceptAll) Validate(string, []byte) error        { return nil }
func (acceptAll) Select(string, [][]byte) (int, error) { return 0, nil }

// TestCapabilityIndexSeparatesVersions: nodes with different runtime
// versions are each found by the queries that match them only.
func TestCapabilityIndexSeparatesVersions(t *testing.T) {
	f := newFabric(t, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	versions := map[int]string{1: "podman/5.8", 2: "podman/5.8", 3: "podman/4.3"}
	for i, v := range versions {
		if err := f.nodes[i].dht.Provide(ctx, "runtime", v); err != nil {
			t.Fatal(err)
		}
	}
	find := func(v string) []string {
		ais, err := f.nodes[4].dht.FindProviders(ctx, "runtime", v, 0)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, ai := range ais {
			ids = append(ids, ai.ID.String())
		}
		sort.Strings(ids)
		return ids
	}
	want := func(idx ...int) []string {
		var ids []string
		for _, i := range idx {
			ids = append(ids, f.nodes[i].h.ID().String())
		}
		sort.Strings(ids)
		return ids
	}
	if got := find("podman/5.8"); fmt.Sprint(got) != fmt.Sprint(want(1, 2)) {
		t.Fatalf("runtime=podman/5.8 found %v, want %v", got, want(1, 2))
	}
	if got := find("podman/4.3"); fmt.Sprint(got) != fmt.Sprint(want(3)) {
		t.Fatalf("runtime=podman/4.3 found %v, want %v", got, want(3))
	}
	if got := find("podman/6.0"); len(got) != 0 {
		t.Fatalf("runtime=podman/6.0 found %v", got)
	}
}
