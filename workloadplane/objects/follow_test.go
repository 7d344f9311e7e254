package objects

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestFollowListsThenStreams: Follow hands over what exists, then every
// change after it, in order, until its context ends.
func TestFollowListsThenStreams(t *testing.T) {
	o, _ := newTestObjects(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := o.Create(ctx, &corev1.ConfigMap{ObjectMeta: inDefault("before")}); err != nil {
		t.Fatal(err)
	}
	r, err := o.ResourceOf(&corev1.ConfigMap{})
	if err != nil {
		t.Fatal(err)
	}
	listed := make(chan []string, 1)
	events := make(chan string, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.In(r).Follow(ctx, "default", func(all []Object) {
			var names []string
			for _, obj := range all {
				names = append(names, obj.GetName())
			}
			listed <- names
		}, func(ev Event) { events <- string(ev.Type) + " " + ev.Object.GetName() },
			func(err error) { t.Errorf("follow failed: %v", err) })
	}()
	if got := <-listed; len(got) != 1 || got[0] != "before" {
		t.Fatalf("listed %v, want [before]", got)
	}
	if err := o.Create(ctx, &corev1.ConfigMap{ObjectMeta: inDefault("after")}); err != nil {
		t.Fatal(err)
	}
	if err := o.Delete(ctx, &corev1.ConfigMap{ObjectMeta: inDefault("before")}, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ADDED after", "DELETED before"} {
		if got := <-events; got != want {
			t.Fatalf("event %q, want %q", got, want)
		}
	}
	cancel()
	<-done
}
