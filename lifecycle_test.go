package mycel

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/mycelfabric/mycel/securityplane/ca"
)

// TestClosedNodeLeavesNoGoroutine: a node started and closed leaves no
// goroutine of its own behind.
func TestClosedNodeLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	caDir := filepath.Join(t.TempDir(), "ca")
	if _, err := ca.Init(caDir, "fabric.test"); err != nil {
		t.Fatal(err)
	}
	n := startTestNode(t, caDir, "node-a", nil)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestComponentsCloseInReverseAndRollBack: components close in reverse
// order of their start, and a failed start closes those that started.
func TestComponentsCloseInReverseAndRollBack(t *testing.T) {
	var log []string
	c := func(name string, fail bool) component {
		return component{name: name,
			start: func(context.Context) error {
				if fail {
					return errors.New("broken")
				}
				log = append(log, "start "+name)
				return nil
			},
			run:   func(ctx context.Context) { <-ctx.Done() },
			close: func() error { log = append(log, "close "+name); return nil }}
	}
	l := &lifecycle{components: []component{c("a", false), c("b", false), c("c", true), c("d", false)}}
	if err := l.start(context.Background()); err == nil || err.Error() != "start c: broken" {
		t.Fatalf("start: %v", err)
	}
	if want := []string{"start a", "start b", "close b", "close a"}; !slices.Equal(log, want) {
		t.Fatalf("%v, want %v", log, want)
	}

	log = nil
	l = &lifecycle{components: []component{c("a", false), c("b", false)}}
	if err := l.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.run()
	l.close()
	l.close()
	if want := []string{"start a", "start b", "close b", "close a"}; !slices.Equal(log, want) {
		t.Fatalf("%v, want %v", log, want)
	}
	if l.goroutines.Go(func() {}) {
		t.Fatal("a goroutine started after shutdown")
	}
}
