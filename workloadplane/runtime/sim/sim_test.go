package sim

import (
	"context"
	"testing"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

func TestLifecycleAndCapacity(t *testing.T) {
	ctx := context.Background()
	r := New(1000, 1<<30)
	a, _ := r.Create(ctx, rt.Spec{Name: "a", Image: "x", MilliCPU: 600, Labels: map[string]string{"pod": "a"}})
	b, _ := r.Create(ctx, rt.Spec{Name: "b", Image: "x", MilliCPU: 600, Labels: map[string]string{"pod": "b"}})
	if err := r.Start(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx, b); err != nil {
		t.Fatal(err)
	}
	cs, _ := r.List(ctx, nil)
	if cs[0].State != rt.StateRunning || cs[1].State != rt.StateExited || cs[1].ExitCode != 137 {
		t.Fatalf("states %s/%s (exit %d); want the first running, the second refused for lack of CPU", cs[0].State, cs[1].State, cs[1].ExitCode)
	}
	if cpu, _ := r.Used(); cpu != 600 {
		t.Fatalf("used %dm, want 600m", cpu)
	}
	r.Stop(ctx, a, 0)
	if err := r.Start(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.List(ctx, map[string]string{"pod": "b"}); len(got) != 1 || got[0].State != rt.StateRunning {
		t.Fatalf("b after a stopped: %+v; want running", got)
	}
	r.Remove(ctx, a)
	if got, _ := r.List(ctx, nil); len(got) != 1 {
		t.Fatalf("%d containers after remove, want 1", len(got))
	}
	if err := r.Start(ctx, a); err == nil {
		t.Fatal("starting a removed container succeeded")
	}
}
