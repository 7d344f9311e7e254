package objects

import (
	"context"
	"slices"
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
