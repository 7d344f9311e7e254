package objects

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestFinalizersHoldDeletion: an object with finalizers is marked, not
// removed, by a delete; no finalizer can be added to it then; the update
// that removes the last one removes it.
func TestFinalizersHoldDeletion(t *testing.T) {
	o, _ := newTestObjects(t)
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: inDefault("held")}
	cm.Finalizers = []string{"example.com/hold"}
	if err := o.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if err := o.Delete(ctx, cm, nil); err != nil {
		t.Fatal(err)
	}
	if err := o.Get(ctx, cm); err != nil || cm.DeletionTimestamp == nil || *cm.DeletionGracePeriodSeconds != 0 {
		t.Fatalf("after delete: %v, %+v; want it marked with no grace period", err, cm.ObjectMeta)
	}
	cm.Finalizers = append(cm.Finalizers, "example.com/late")
	wantInvalid(t, o.Update(ctx, cm), "metadata.finalizers")
	if err := o.Get(ctx, cm); err != nil {
		t.Fatal(err)
	}
	cm.Finalizers = nil
	if err := o.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if err := o.Get(ctx, cm); !apierrors.IsNotFound(err) {
		t.Fatalf("after its last finalizer went: %v, want 404", err)
	}
	// Orphan and Foreground deletes hold the object with the garbage
	// collector's finalizers.
	for policy, fin := range map[metav1.DeletionPropagation]string{metav1.DeletePropagationOrphan: "orphan", metav1.DeletePropagationForeground: "foregroundDeletion"} {
		cm := &corev1.ConfigMap{ObjectMeta: inDefault("by-" + strings.ToLower(string(policy)))}
		if err := o.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
		if err := o.DeleteWith(ctx, cm, DeleteOptions{Propagation: policy}); err != nil {
			t.Fatal(err)
		}
		if err := o.Get(ctx, cm); err != nil || cm.DeletionTimestamp == nil || !slices.Equal(cm.Finalizers, []string{fin}) {
			t.Fatalf("%s delete: %v, %+v; want it marked with finalizer %s", policy, err, cm.ObjectMeta, fin)
		}
	}
}

// TestDeleteWithoutPreconditionOutlastsConcurrentWrites: a delete with no
// resourceVersion precondition succeeds while another writer keeps
// updating the object (an agent's status updates), both when it removes
// the object and when it marks one held by a finalizer; with a stale
// resourceVersion it is a Conflict.
func TestDeleteWithoutPreconditionOutlastsConcurrentWrites(t *testing.T) {
	o, _ := newTestObjects(t)
	ctx := context.Background()
	for i := range 10 {
		cm := &corev1.ConfigMap{ObjectMeta: inDefault(fmt.Sprintf("busy-%d", i))}
		if i%2 == 1 {
			cm.Finalizers = []string{"example.com/hold"}
		}
		if err := o.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
		stop, done := make(chan struct{}), make(chan struct{})
		wrote := make(chan struct{}, 1)
		go func() {
			defer close(done)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				cur := &corev1.ConfigMap{ObjectMeta: inDefault(cm.Name)}
				if o.Get(ctx, cur) != nil {
					return
				}
				cur.Labels = map[string]string{"n": strconv.Itoa(n)}
				if o.Update(ctx, cur) == nil {
					select {
					case wrote <- struct{}{}:
					default:
					}
				}
			}
		}()
		<-wrote // the writer is under way
		err := o.Delete(ctx, &corev1.ConfigMap{ObjectMeta: inDefault(cm.Name)}, nil)
		close(stop)
		<-done
		if err != nil {
			t.Fatalf("delete %s while it is being written: %v", cm.Name, err)
		}
	}
	stale := &corev1.ConfigMap{ObjectMeta: inDefault("stale")}
	if err := o.Create(ctx, stale); err != nil {
		t.Fatal(err)
	}
	rv := stale.ResourceVersion
	stale.Labels = map[string]string{"changed": "yes"}
	if err := o.Update(ctx, stale); err != nil {
		t.Fatal(err)
	}
	err := o.DeleteWith(ctx, &corev1.ConfigMap{ObjectMeta: inDefault("stale")}, DeleteOptions{ResourceVersion: rv})
	if !apierrors.IsConflict(err) {
		t.Fatalf("delete at a stale resourceVersion: %v, want a Conflict", err)
	}
}
