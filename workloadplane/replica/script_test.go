package replica

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mycelfabric/mycel/machineplane/bus/bustest"
	"github.com/mycelfabric/mycel/securityplane/envelope"
	"github.com/mycelfabric/mycel/workloadplane/store"
)

// The replication scripts in testdata/ drive replicas over an in-memory
// bus with a fake clock and print every message they exchange. Rewrite
// them with `go test -run TestScripts -rewrite`.
//
//	node NAME [batch-count=N] [keys-per-step=N] [buckets-per-step=N] [stranger]
//	put NAME KEY           (the value is the input)
//	delete NAME KEY
//	fanout NAME            (publish its queued writes and deliver them)
//	sync NAME PEER         (one round of anti-entropy, NAME asking PEER)
//	cut A B | heal | advance DURATION
//	dump NAME              (its live records, key order)
//
// A stranger is not a member: the others refuse what it sends.
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		w := newWorld(t)
		datadriven.RunTest(t, path, w.run)
	})
}

type replicaNode struct {
	name string
	peer string
	st   *store.Store
	r    *Replicator
}

type world struct {
	t       testing.TB
	now     time.Time
	bus     *bustest.Bus
	nodes   map[string]*replicaNode
	names   map[string]string // peer ID → node name
	members map[peer.ID]bool
	trace   []string
}

func newWorld(t testing.TB) *world {
	w := &world{t: t, now: time.Unix(1_700_000_000, 0), bus: bustest.New(), nodes: map[string]*replicaNode{},
		names: map[string]string{}, members: map[peer.ID]bool{}}
	w.bus.Trace = w.record
	return w
}

func (w *world) clock() time.Time { return w.now }

// seeded reads deterministic key material for a node's name.
type seeded struct{ seed [32]byte }

func (s *seeded) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = s.seed[i%32]
	}
	return len(p), nil
}

func (w *world) run(t *testing.T, d *datadriven.TestData) string {
	w.trace = nil
	arg := func(i int) string {
		if i >= len(d.CmdArgs) {
			d.Fatalf(t, "%s: argument %d missing", d.Cmd, i+1)
		}
		return d.CmdArgs[i].Key
	}
	node := func(i int) *replicaNode {
		n := w.nodes[arg(i)]
		if n == nil {
			d.Fatalf(t, "no node %q", arg(i))
		}
		return n
	}
	var out []string
	switch d.Cmd {
	case "node":
		w.addNode(t, d, arg(0))
	case "put":
		if _, err := node(0).st.Put(arg(1), []byte(strings.TrimSpace(d.Input)), store.Precondition{}); err != nil {
			out = append(out, "error: "+err.Error())
		}
	case "delete":
		if _, err := node(0).st.Delete(arg(1), store.Precondition{}); err != nil {
			out = append(out, "error: "+err.Error())
		}
	case "fanout":
		n := node(0).r.FanOut()
		w.bus.Deliver()
		out = append(out, fmt.Sprintf("%s published %d records", arg(0), n))
	case "sync":
		if err := node(0).r.SyncWith(context.Background(), node(1).peer); err != nil {
			out = append(out, "error: "+w.named(err.Error()))
		}
	case "cut":
		w.bus.Cut(node(0).peer, node(1).peer)
	case "heal":
		w.bus.Heal()
	case "advance":
		dur, err := time.ParseDuration(arg(0))
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		w.now = w.now.Add(dur)
	case "dump":
		recs, _, err := node(0).st.List("")
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		for _, r := range recs {
			out = append(out, fmt.Sprintf("%s %s", r.Key, r.Value))
		}
	default:
		d.Fatalf(t, "unknown command %q", d.Cmd)
	}
	return strings.Join(append(w.trace, out...), "\n")
}

func (w *world) addNode(t testing.TB, d *datadriven.TestData, name string) {
	key, _, err := crypto.GenerateEd25519Key(&seeded{sha256.Sum256([]byte(name))})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(key)
	n := &replicaNode{name: name, peer: id.String()}
	if !d.HasArg("stranger") {
		w.members[id] = true
	}
	w.names[n.peer] = name
	cfg := Config{Conn: w.bus.Conn(n.peer), Key: key, Self: n.peer, Now: w.clock, InFlight: 1,
		Opener: &envelope.Opener{Known: func(p peer.ID) bool { return w.members[p] }, Now: w.clock},
		Peers:  func() []string { return nil }}
	d.MaybeScanArgs(t, "batch-count", &cfg.BatchCount)
	d.MaybeScanArgs(t, "keys-per-step", &cfg.KeysPerStep)
	d.MaybeScanArgs(t, "buckets-per-step", &cfg.BucketsPerStep)
	n.st, err = store.Open(filepath.Join(t.TempDir(), name+".db"), store.Options{Node: name, Now: w.clock,
		OnLocalWrite: func(r store.Record) { n.r.Enqueue(r) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.st.Close() })
	cfg.Store = n.st
	if n.r, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := n.r.Serve(); err != nil {
		t.Fatal(err)
	}
	w.nodes[name] = n
}

// named replaces peer IDs by node names.
func (w *world) named(s string) string {
	for id, name := range w.names {
		s = strings.ReplaceAll(s, id, name)
	}
	return s
}

// record traces one message: sender, receiver, type and what it carries.
func (w *world) record(from, to, subject string, data []byte) {
	e, err := envelope.Decode(data)
	if err != nil {
		w.trace = append(w.trace, fmt.Sprintf("%s -> %s on %s: not an envelope", w.named(from), w.named(to), w.named(subject)))
		return
	}
	what := ""
	switch e.Type {
	case TypePut:
		var b batch
		json.Unmarshal(e.Payload, &b)
		what = keys(b.Records)
	case TypeSync:
		var req syncRequest
		json.Unmarshal(e.Payload, &req)
		what = req.Op
		switch req.Op {
		case "entries":
			what += fmt.Sprintf(" %d buckets", len(req.Buckets))
		case "get":
			what += " " + strings.Join(req.Keys, " ")
		case "push":
			what += " " + keys(req.Records)
		}
	case TypeSyncReply:
		var rep syncReply
		json.Unmarshal(e.Payload, &rep)
		var parts []string
		if rep.Digest != nil {
			parts = append(parts, "digest")
		}
		if rep.Entries != nil {
			parts = append(parts, fmt.Sprintf("%d entries", len(rep.Entries)))
		}
		if rep.Records != nil {
			parts = append(parts, keys(rep.Records))
		}
		if rep.More != nil {
			parts = append(parts, "more "+strings.Join(rep.More, " "))
		}
		if rep.Error != "" {
			parts = append(parts, "error: "+w.named(rep.Error))
		}
		what = strings.Join(parts, ", ")
	}
	w.trace = append(w.trace, strings.TrimSpace(fmt.Sprintf("%s -> %s %s %s", w.named(from), w.named(to), e.Type, what)))
}

func keys(recs []store.Record) string {
	var ks []string
	for _, r := range recs {
		k := r.Key
		if r.Deleted {
			k += "(deleted)"
		}
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return "[" + strings.Join(ks, " ") + "]"
}
