package replica

import (
	"errors"
	"testing"

	"github.com/mycelfabric/mycel/workloadplane/store"
)

// TestStrictWritesMeetAtTheOwner: strict writes through a node that does
// not own the key are checked and committed by the owner, so a stale
// version conflicts though the asking node's own copy would have let it
// through, and a second create of a key through another node is refused;
// the asking node holds what the owner wrote (or holds) once it answers.
// Writes that are not strict stay on the asking node.
func TestStrictWritesMeetAtTheOwner(t *testing.T) {
	_, a, b := pair(t)
	viaA := a.r.Routed(func(string) string { return b.peer }) // b owns every key
	rec, err := viaA.Put("configmaps/ns/x", []byte(`{"v":1}`), store.Precondition{MustNotExist: true, Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	onB, err := b.st.Get("configmaps/ns/x")
	if err != nil || onB.Version() != rec.Version() || rec.RV == 0 {
		t.Fatalf("after a strict create through a: b holds %+v (%v); a answered %+v", onB, err, rec)
	}
	if _, err := viaA.Put("configmaps/ns/x", []byte(`{"v":1}`), store.Precondition{MustNotExist: true, Strict: true}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	// b writes a newer version that a has not received (no fan-out runs).
	if _, err := b.st.Put("configmaps/ns/x", []byte(`{"v":2}`), store.Precondition{}); err != nil {
		t.Fatal(err)
	}
	stale := rec.Version()
	if cur, _ := a.st.Get("configmaps/ns/x"); cur.Version() != stale {
		t.Fatalf("a already holds the newer version")
	}
	if _, err := viaA.Put("configmaps/ns/x", []byte(`{"v":3}`), store.Precondition{MustExist: true, Version: stale, Strict: true}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("update at a stale version through a: %v, want ErrConflict", err)
	}
	cur, err := a.st.Get("configmaps/ns/x")
	if err != nil || string(cur.Value) != `{"v":2}` {
		t.Fatalf("after the conflict a holds %s (%v): want the owner's newer version", cur.Value, err)
	}
	if _, err := viaA.Put("configmaps/ns/x", []byte(`{"v":3}`), store.Precondition{MustExist: true, Version: cur.Version(), Strict: true}); err != nil {
		t.Fatalf("update at the current version: %v", err)
	}
	if _, err := viaA.Delete("configmaps/ns/x", store.Precondition{Version: stale, Strict: true}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("delete at a stale version: %v, want ErrConflict", err)
	}
	if _, err := viaA.Put("configmaps/ns/local", []byte(`{}`), store.Precondition{MustNotExist: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Get("configmaps/ns/local"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a write that is not strict reached b: %v", err)
	}
}

// TestStrictWriteWithoutItsOwner: an owner that does not answer leaves a
// strict write to the asking node.
func TestStrictWriteWithoutItsOwner(t *testing.T) {
	_, a, _ := pair(t)
	a.r.cfg.WriteTimeout = 1
	viaA := a.r.Routed(func(string) string { return "12D3KooWNobodyAnswersThisPeerID" })
	if _, err := viaA.Put("configmaps/ns/x", []byte(`{}`), store.Precondition{MustNotExist: true, Strict: true}); err != nil {
		t.Fatalf("strict create with its owner gone: %v", err)
	}
	if _, err := a.st.Get("configmaps/ns/x"); err != nil {
		t.Fatal(err)
	}
}
