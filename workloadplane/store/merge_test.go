package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// replicas opens n stores whose local writes are collected per replica.
func replicas(t *testing.T, names ...string) ([]*Store, map[string][]Record) {
	t.Helper()
	out := map[string][]Record{}
	var stores []*Store
	for _, n := range names {
		stores = append(stores, open(t, filepath.Join(t.TempDir(), n), Options{Node: n, OnLocalWrite: func(r Record) { out[n] = append(out[n], r) }}))
	}
	return stores, out
}

func mustPut(t *testing.T, s *Store, key, value string) {
	t.Helper()
	if _, err := s.Put(key, []byte(value), Precondition{}); err != nil {
		t.Fatal(err)
	}
}

func mustMerge(t *testing.T, s *Store, rs []Record) {
	t.Helper()
	for _, r := range rs {
		if _, err := s.Merge(r); err != nil {
			t.Fatal(err)
		}
	}
}

func doc(t *testing.T, s *Store, key string) map[string]any {
	t.Helper()
	r, err := s.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(r.Value, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestConcurrentSpecAndStatusWritesBothSurvive: a user's spec change on one
// replica and an agent's status write on another, concurrently, are both
// kept on both replicas, whichever order the merges happen in.
func TestConcurrentSpecAndStatusWritesBothSurvive(t *testing.T) {
	st, writes := replicas(t, "a", "b")
	a, b := st[0], st[1]
	mustPut(t, a, "pods/ns/p", `{"metadata":{"name":"p"},"spec":{"n":1},"status":{"phase":"Pending"}}`)
	mustMerge(t, b, writes["a"])
	writes["a"] = nil

	mustPut(t, a, "pods/ns/p", `{"metadata":{"name":"p"},"spec":{"n":2},"status":{"phase":"Pending"}}`) // user: spec
	mustPut(t, b, "pods/ns/p", `{"metadata":{"name":"p"},"spec":{"n":1},"status":{"phase":"Running"}}`) // agent: status
	mustMerge(t, a, writes["b"])
	mustMerge(t, b, writes["a"])

	for _, s := range []*Store{a, b} {
		d := doc(t, s, "pods/ns/p")
		if d["spec"].(map[string]any)["n"] != 2.0 || d["status"].(map[string]any)["phase"] != "Running" {
			t.Errorf("replica lost a write: %v", d)
		}
	}
	if a.Digest() != b.Digest() {
		t.Error("replicas with the same writes have different digests")
	}
}

// TestDeletionIsSticky: a deletion request is not undone by a later write
// that had not seen it.
func TestDeletionIsSticky(t *testing.T) {
	st, writes := replicas(t, "a", "b")
	a, b := st[0], st[1]
	mustPut(t, a, "pods/ns/p", `{"metadata":{"name":"p"},"spec":{"n":1}}`)
	mustMerge(t, b, writes["a"])
	writes["a"] = nil

	mustPut(t, a, "pods/ns/p", `{"metadata":{"name":"p","deletionTimestamp":"2026-01-01T00:00:00Z","deletionGracePeriodSeconds":30},"spec":{"n":1}}`)
	mustPut(t, b, "pods/ns/p", `{"metadata":{"name":"p","labels":{"x":"y"}},"spec":{"n":1}}`) // later, unaware
	mustMerge(t, a, writes["b"])
	mustMerge(t, b, writes["a"])
	for i, s := range []*Store{a, b} {
		meta := doc(t, s, "pods/ns/p")["metadata"].(map[string]any)
		if meta["deletionTimestamp"] == nil || meta["labels"] == nil {
			t.Errorf("replica %d: %v", i, meta)
		}
	}
	ra, _ := a.Get("pods/ns/p")
	rb, _ := b.Get("pods/ns/p")
	if string(ra.Value) != string(rb.Value) {
		t.Errorf("replicas diverged:\n%s\n%s", ra.Value, rb.Value)
	}
}

// TestDigestFindsTheDifference: replicas that miss a write differ in
// exactly the bucket of its key, and the entries there say who is newer.
func TestDigestFindsTheDifference(t *testing.T) {
	st, writes := replicas(t, "a", "b")
	a, b := st[0], st[1]
	for _, k := range []string{"pods/ns/1", "pods/ns/2", "pods/ns/3"} {
		mustPut(t, a, k, `{"v":1}`)
	}
	mustMerge(t, b, writes["a"])
	if a.Digest() != b.Digest() {
		t.Fatal("digests differ after a full exchange")
	}
	if _, err := a.Delete("pods/ns/2", Precondition{}); err != nil {
		t.Fatal(err)
	}
	da, db := a.Digest(), b.Digest()
	var diff []int
	for i := range da {
		if da[i] != db[i] {
			diff = append(diff, i)
		}
	}
	if len(diff) != 1 || diff[0] != Bucket("pods/ns/2") {
		t.Fatalf("differing buckets %v, want [%d]", diff, Bucket("pods/ns/2"))
	}
	ea, eb := a.Entries(diff), b.Entries(diff)
	find := func(es []Entry) Entry {
		for _, e := range es {
			if e.Key == "pods/ns/2" {
				return e
			}
		}
		t.Fatal("key missing from its bucket")
		return Entry{}
	}
	if !find(ea).Newer(find(eb)) || find(eb).Newer(find(ea)) {
		t.Fatal("the tombstone is not newer than the live record")
	}
	recs, err := a.Records([]string{"pods/ns/2"})
	if err != nil {
		t.Fatal(err)
	}
	mustMerge(t, b, recs)
	if _, err := b.Get("pods/ns/2"); err == nil || a.Digest() != b.Digest() {
		t.Fatal("the tombstone did not converge")
	}
}

// TestDeleteWinsOverConcurrentWrites: a delete on one replica is not
// undone by spec and status writes made to the same object on another
// replica after it (the other side of a partition), in either merge order,
// and anti-entropy's entries agree on who is newer.
func TestDeleteWinsOverConcurrentWrites(t *testing.T) {
	st, writes := replicas(t, "a", "b")
	a, b := st[0], st[1]
	mustPut(t, a, "apps/ns/d", `{"metadata":{"name":"d"},"spec":{"n":1}}`)
	mustMerge(t, b, writes["a"])
	writes["a"] = nil

	if _, err := a.Delete("apps/ns/d", Precondition{}); err != nil {
		t.Fatal(err)
	}
	mustPut(t, b, "apps/ns/d", `{"metadata":{"name":"d"},"spec":{"n":1},"status":{"ready":1}}`) // later, unaware
	mustPut(t, b, "apps/ns/d", `{"metadata":{"name":"d"},"spec":{"n":2},"status":{"ready":1}}`)
	ea, eb := a.Entries([]int{Bucket("apps/ns/d")})[0], b.Entries([]int{Bucket("apps/ns/d")})[0]
	if !ea.Newer(eb) || eb.Newer(ea) {
		t.Fatalf("entries: the tombstone %+v must be newer than the later writes %+v", ea, eb)
	}
	mustMerge(t, a, writes["b"])
	mustMerge(t, b, writes["a"])
	for i, s := range []*Store{a, b} {
		if _, err := s.Get("apps/ns/d"); !errors.Is(err, ErrNotFound) {
			t.Errorf("replica %d: the deleted object is back (%v)", i, err)
		}
	}
	if a.Digest() != b.Digest() {
		t.Error("replicas with the same writes have different digests")
	}
}

// TestRecreatedKeyIsANewIncarnation: a key deleted and created again is a
// new object: the old one's later writes and its tombstone leave it alone,
// in any merge order.
func TestRecreatedKeyIsANewIncarnation(t *testing.T) {
	st, writes := replicas(t, "a", "b", "c")
	a, b, c := st[0], st[1], st[2]
	mustPut(t, a, "apps/ns/d", `{"metadata":{"name":"d","uid":"1"},"spec":{"n":1}}`)
	mustMerge(t, b, writes["a"])
	mustMerge(t, c, writes["a"])
	writes["a"] = nil

	if _, err := a.Delete("apps/ns/d", Precondition{}); err != nil {
		t.Fatal(err)
	}
	tombstone := writes["a"]
	mustPut(t, a, "apps/ns/d", `{"metadata":{"name":"d","uid":"2"},"spec":{"n":5}}`) // created again
	created := writes["a"][len(tombstone):]
	mustPut(t, b, "apps/ns/d", `{"metadata":{"name":"d","uid":"1"},"spec":{"n":1},"status":{"ready":1}}`) // the old one, unaware
	old := writes["b"]

	// b hears the old object's tombstone only after the new one; c the other way.
	mustMerge(t, b, created)
	mustMerge(t, b, tombstone)
	mustMerge(t, c, old)
	mustMerge(t, c, tombstone)
	mustMerge(t, c, created)
	mustMerge(t, a, old)
	for i, s := range []*Store{a, b, c} {
		if m := doc(t, s, "apps/ns/d")["metadata"].(map[string]any); m["uid"] != "2" {
			t.Errorf("replica %d holds %v, want the new object", i, m)
		}
	}
	if a.Digest() != b.Digest() || b.Digest() != c.Digest() {
		t.Error("replicas with the same writes have different digests")
	}
}

// TestMergeBatchAppliesInOneGo: a batch is applied as merging its records
// one by one would (the same records, events and resourceVersions), a
// malformed record in it is reported and left out, and a record that
// changes nothing is not counted.
func TestMergeBatchAppliesInOneGo(t *testing.T) {
	st, writes := replicas(t, "a", "b", "c")
	a, b, c := st[0], st[1], st[2]
	for i := range 5 {
		mustPut(t, a, fmt.Sprintf("pods/ns/p%d", i), fmt.Sprintf(`{"v":%d}`, i))
	}
	mustMerge(t, c, writes["a"][:1]) // c already holds p0
	base := b.ResourceVersion()
	w, err := b.Watch("pods/", base)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	batch := append([]Record{{Key: "pods/ns/bad", Value: json.RawMessage(`{`)}}, writes["a"]...)
	for _, s := range []*Store{b, c} {
		n, err := s.MergeBatch(batch)
		want := 5
		if s == c {
			want = 4
		}
		if n != want || err == nil || !strings.Contains(err.Error(), "pods/ns/bad") {
			t.Fatalf("MergeBatch: %d applied, %v; want %d and the malformed record named", n, err, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range 5 {
		ev, err := w.Next(ctx)
		if err != nil || ev.Type != Added || ev.Record.Key != fmt.Sprintf("pods/ns/p%d", i) || ev.Record.RV != base+uint64(i+1) {
			t.Fatalf("event %d: %+v %v", i, ev, err)
		}
	}
	if a.Digest() != b.Digest() || b.Digest() != c.Digest() {
		t.Error("replicas with the same writes have different digests")
	}
}
