package runtime_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
	"github.com/mycelfabric/mycel/workloadplane/runtime/runtimetest"
)

// TestMeteredCountsErrors: a failed operation is recorded with
// result="error", a successful one with result="ok".
func TestMeteredCountsErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	fake := runtimetest.New(time.Now, "img:1")
	r, err := rt.Metered(fake, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.EnsureImage(ctx, "img:1", false); err != nil {
		t.Fatal(err)
	}
	if err := r.EnsureImage(ctx, "img:missing", false); !errors.Is(err, rt.ErrImageNotFound) {
		t.Fatalf("missing image: %v", err)
	}
	fake.SetDown(true)
	r.List(ctx, nil)
	for _, c := range []struct {
		op, result string
		want       int
	}{{"ensure_image", "ok", 1}, {"ensure_image", "error", 1}, {"list", "error", 1}, {"list", "ok", 0}} {
		n := sampleCount(t, reg, c.op, c.result)
		if n != c.want {
			t.Errorf("%s %s: %d samples, want %d", c.op, c.result, n, c.want)
		}
	}
}

func sampleCount(t *testing.T, reg *prometheus.Registry, op, result string) int {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["operation"] == op && labels["result"] == result {
				return int(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// TestMeteredKeepsOptionalInterfaces: the wrapper of a runtime that execs
// and has sandboxes does too (and times them); that of one without them
// does not pretend to.
func TestMeteredKeepsOptionalInterfaces(t *testing.T) {
	reg := prometheus.NewRegistry()
	r, err := rt.Metered(runtimetest.New(time.Now, "img:1"), reg)
	if err != nil {
		t.Fatal(err)
	}
	sbs, isSandboxes := r.(rt.Sandboxes)
	_, isExec := r.(rt.Execer)
	if !isSandboxes || !isExec {
		t.Fatalf("metered fake: Sandboxes %v, Execer %v; want both", isSandboxes, isExec)
	}
	sbs.ListSandboxes(context.Background(), nil)
	if n := sampleCount(t, reg, "list_sandboxes", "ok"); n != 1 {
		t.Fatalf("list_sandboxes: %d samples", n)
	}
	bare, err := rt.Metered(struct{ rt.Runtime }{runtimetest.New(time.Now)}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := bare.(rt.Sandboxes); ok {
		t.Fatal("the wrapper of a runtime without sandboxes claims to have them")
	}
	if _, ok := bare.(rt.Execer); ok {
		t.Fatal("the wrapper of a runtime that cannot exec claims to")
	}
}
