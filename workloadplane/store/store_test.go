package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func open(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	if opts.Node == "" {
		opts.Node = "n1"
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPreconditions(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "db"), Options{})
	r1, err := s.Put("pods/ns/a", []byte(`{"v":1}`), Precondition{MustNotExist: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"create twice", func() error { _, err := s.Put("pods/ns/a", []byte(`{}`), Precondition{MustNotExist: true}); return err }, ErrExists},
		{"update stale rv", func() error { _, err := s.Put("pods/ns/a", []byte(`{}`), Precondition{RV: r1.RV + 7}); return err }, ErrConflict},
		{"update missing", func() error { _, err := s.Put("pods/ns/b", []byte(`{}`), Precondition{MustExist: true}); return err }, ErrNotFound},
		{"delete missing", func() error { _, err := s.Delete("pods/ns/b", Precondition{}); return err }, ErrNotFound},
		{"not json", func() error { _, err := s.Put("pods/ns/c", []byte(`{`), Precondition{}); return err }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if tt.want == nil {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	r2, err := s.Put("pods/ns/a", []byte(`{"v":2}`), Precondition{RV: r1.RV})
	if err != nil || r2.RV <= r1.RV {
		t.Fatalf("update with current rv: %v rv %d", err, r2.RV)
	}
	if _, err := s.Delete("pods/ns/a", Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("pods/ns/a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := s.Put("pods/ns/a", []byte(`{"v":3}`), Precondition{MustNotExist: true}); err != nil {
		t.Fatalf("re-create over tombstone: %v", err)
	}
}

func TestListPrefixAndPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path, Options{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"pods/a/x", "pods/a/y", "pods/b/z", "deployments/a/x"} {
		if _, err := s.Put(k, []byte(`{}`), Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	s.Delete("pods/a/y", Precondition{})
	rv := s.ResourceVersion()
	s.Close()

	s = open(t, path, Options{Node: "n1"})
	recs, listRV, err := s.List("pods/a/")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Key != "pods/a/x" || listRV != rv {
		t.Fatalf("after restart: %d records (%v), rv %d want %d", len(recs), recs, listRV, rv)
	}
	r, _ := s.Put("pods/a/w", []byte(`{}`), Precondition{})
	if r.RV != rv+1 {
		t.Fatalf("rv after restart %d, want %d", r.RV, rv+1)
	}
	// The watch log survived the restart too.
	w, err := s.Watch("pods/", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var types []EventType
	for range 5 {
		ev, err := w.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, ev.Type)
	}
	if fmt.Sprint(types) != "[ADDED ADDED ADDED DELETED ADDED]" {
		t.Fatalf("replayed %v", types)
	}
}

func TestWatchResumesAndExpires(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "db"), Options{LogSize: 10})
	r, _ := s.Put("pods/ns/a", []byte(`{"v":1}`), Precondition{})
	w, err := s.Watch("pods/ns/", r.RV)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s.Put("other/ns/a", []byte(`{}`), Precondition{})
	s.Put("pods/ns/a", []byte(`{"v":2}`), Precondition{})
	s.Delete("pods/ns/a", Precondition{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev, err := w.Next(ctx)
	if err != nil || ev.Type != Modified || string(ev.Record.Value) != `{"v":2}` {
		t.Fatalf("first event %v %v", ev, err)
	}
	ev, err = w.Next(ctx)
	if err != nil || ev.Type != Deleted || string(ev.Record.Value) != `{"v":2}` {
		t.Fatalf("delete event %+v %v (want last live value)", ev, err)
	}

	for i := range 30 {
		s.Put(fmt.Sprintf("pods/ns/p%d", i), []byte(`{}`), Precondition{})
	}
	if _, err := s.Watch("pods/", 1); !errors.Is(err, ErrExpired) {
		t.Fatalf("watch from trimmed rv: %v, want ErrExpired", err)
	}
	if _, err := s.Watch("pods/", s.ResourceVersion()-5); err != nil {
		t.Fatalf("watch from retained rv: %v", err)
	}
}

func TestMergeLastWriterWins(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "db"), Options{Node: "b"})
	older := Record{Key: "k/ns/a", Value: []byte(`"old"`), Stamp: Timestamp{Wall: 100, Node: "a"}}
	newer := Record{Key: "k/ns/a", Value: []byte(`"new"`), Stamp: Timestamp{Wall: 100, Logical: 1, Node: "a"}}
	tie := Record{Key: "k/ns/a", Value: []byte(`"tie"`), Stamp: Timestamp{Wall: 100, Logical: 1, Node: "c"}}
	for _, step := range []struct {
		rec  Record
		want bool
		val  string
	}{
		{newer, true, `"new"`},
		{older, false, `"new"`},
		{tie, true, `"tie"`},
		{newer, false, `"tie"`},
		{Record{Key: "k/ns/a", Deleted: true, Stamp: Timestamp{Wall: 200, Node: "a"}}, true, ""},
		{newer, false, ""},
	} {
		applied, err := s.Merge(step.rec)
		if err != nil || applied != step.want {
			t.Fatalf("merge %+v: applied %v err %v, want %v", step.rec.Stamp, applied, err, step.want)
		}
		r, err := s.Get("k/ns/a")
		got := string(r.Value)
		if err != nil {
			got = ""
		}
		if got != step.val {
			t.Fatalf("after merge %+v: value %q want %q", step.rec.Stamp, got, step.val)
		}
	}
	// A local write after merging a future stamp still wins.
	local, _ := s.Put("k/ns/a", []byte(`"local"`), Precondition{})
	if !(Timestamp{Wall: 200, Node: "a"}).Less(local.Stamp) {
		t.Fatalf("local stamp %+v does not order after observed stamp", local.Stamp)
	}
}

func TestCollectTombstones(t *testing.T) {
	now := time.Unix(1000, 0)
	s := open(t, filepath.Join(t.TempDir(), "db"), Options{Now: func() time.Time { return now }})
	s.Put("k/ns/a", []byte(`{}`), Precondition{})
	s.Delete("k/ns/a", Precondition{})
	if n, _ := s.CollectTombstones(now); n != 0 {
		t.Fatalf("collected %d tombstones not yet old", n)
	}
	if n, _ := s.CollectTombstones(now.Add(time.Second)); n != 1 {
		t.Fatalf("collected %d, want 1", n)
	}
}

func TestSlowWatcherIsCut(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "db"), Options{WatchQueue: 5})
	w, _ := s.Watch("", 0)
	defer w.Close()
	for i := range 6 {
		s.Put(fmt.Sprintf("k/ns/%d", i%10), []byte(`{}`), Precondition{})
	}
	if _, err := w.Next(context.Background()); !errors.Is(err, ErrTooSlow) {
		t.Fatalf("got %v, want ErrTooSlow", err)
	}
}

// TestListAfterReadsOnlyThePage: a page starts after a key, skips
// tombstones, stops where keep says, and counts the live records left.
func TestListAfterReadsOnlyThePage(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "db"), Options{})
	for _, k := range []string{"cm/a", "cm/b", "cm/c", "cm/d", "other/a"} {
		if _, err := s.Put(k, []byte(`{}`), Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	s.Delete("cm/b", Precondition{})
	page := func(after string, limit int) ([]string, int64) {
		t.Helper()
		var keys []string
		_, left, err := s.ListAfter("cm/", after, func(r Record) (bool, error) {
			keys = append(keys, r.Key)
			return len(keys) < limit, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return keys, left
	}
	if keys, left := page("", 1); !slices.Equal(keys, []string{"cm/a"}) || left != 2 {
		t.Fatalf("first page %v, %d left; want [cm/a], 2 (cm/b is deleted)", keys, left)
	}
	if keys, left := page("cm/a", 2); !slices.Equal(keys, []string{"cm/c", "cm/d"}) || left != 0 {
		t.Fatalf("page after cm/a %v, %d left; want [cm/c cm/d], 0", keys, left)
	}
	if keys, _ := page("cm/b", 5); !slices.Equal(keys, []string{"cm/c", "cm/d"}) {
		t.Fatalf("page after a deleted key %v", keys)
	}
}

// TestPutOfTheSameValueIsNoWrite: writing the stored value again keeps its
// resourceVersion, sends no watch event and replicates nothing.
func TestPutOfTheSameValueIsNoWrite(t *testing.T) {
	var replicated []Record
	s := open(t, filepath.Join(t.TempDir(), "db"), Options{OnLocalWrite: func(r Record) { replicated = append(replicated, r) }})
	r1, err := s.Put("pods/ns/a", []byte(`{"v":1}`), Precondition{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch("pods/", r1.RV)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r2, err := s.Put("pods/ns/a", []byte(`{"v":1}`), Precondition{RV: r1.RV})
	if err != nil || r2.RV != r1.RV || r2.Stamp != r1.Stamp || s.ResourceVersion() != r1.RV {
		t.Fatalf("same value again: %+v %v, want the record at rv %d", r2, err, r1.RV)
	}
	if len(replicated) != 1 {
		t.Fatalf("replicated %d writes, want 1", len(replicated))
	}
	s.Put("pods/ns/a", []byte(`{"v":2}`), Precondition{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if ev, err := w.Next(ctx); err != nil || string(ev.Record.Value) != `{"v":2}` {
		t.Fatalf("first event after the no-op: %+v %v, want the change to v2", ev, err)
	}
}
