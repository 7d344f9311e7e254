package replica

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/mycelfabric/mycel/workloadplane/store"
)

// seed gives n count records under prefix in one transaction, as if
// another replica had written them.
func seed(t testing.TB, n *replicaNode, prefix string, count int) {
	t.Helper()
	recs := make([]store.Record, 0, count)
	for i := range count {
		ts := n.st.Clock().Now()
		key := fmt.Sprintf("namespaces//%s-%05d", prefix, i)
		value := fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"%s-%05d","uid":"%032d","labels":{"kubernetes.io/metadata.name":"%s-%05d"}},"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}}`, prefix, i, i, prefix, i)
		recs = append(recs, store.Record{Key: key, Value: []byte(value), Stamp: ts, StatusStamp: ts, Born: ts})
	}
	if _, err := n.st.MergeBatch(recs); err != nil {
		t.Fatal(err)
	}
}

func pair(t testing.TB, args ...datadriven.CmdArg) (*world, *replicaNode, *replicaNode) {
	w := newWorld(t)
	d := &datadriven.TestData{CmdArgs: args}
	w.addNode(t, d, "a")
	w.addNode(t, d, "b")
	return w, w.nodes["a"], w.nodes["b"]
}

// TestSyncOfManyKeys: one round of anti-entropy repairs replicas whose
// differing buckets hold more entries than one message may carry.
func TestSyncOfManyKeys(t *testing.T) {
	_, a, b := pair(t, datadriven.CmdArg{Key: "buckets-per-step", Vals: []string{"256"}})
	seed(t, a, "left", 6000)
	seed(t, b, "right", 6000)
	if err := a.r.SyncWith(context.Background(), b.peer); err != nil {
		t.Fatal(err)
	}
	if a.st.Digest() != b.st.Digest() || a.st.Len() != 12000 {
		t.Fatalf("after one round: a holds %d keys, b %d, digests equal %v", a.st.Len(), b.st.Len(), a.st.Digest() == b.st.Digest())
	}
}

// BenchmarkSyncWith10k: one round of anti-entropy between two replicas
// holding 5,000 records each that the other lacks (a 2 | 3 split healing),
// over the in-memory bus: what the protocol and the stores cost, without
// the network.
//
//	go test -run '^$' -bench SyncWith10k ./workloadplane/replica/
func BenchmarkSyncWith10k(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		w, x, y := pair(b)
		w.bus.Trace = nil
		seed(b, x, "left", 5000)
		seed(b, y, "right", 5000)
		b.StartTimer()
		if err := x.r.SyncWith(context.Background(), y.peer); err != nil {
			b.Fatal(err)
		}
	}
}
