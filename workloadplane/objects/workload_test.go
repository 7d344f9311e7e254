package objects

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func controlledBy(uid types.UID) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "X", Name: "x", UID: uid, Controller: new(true)}}
}

// TestWorkloadKeyIsTheRootOfTheControllerChain: a Deployment, its
// ReplicaSet and its pods have one key, so one owner.
func TestWorkloadKeyIsTheRootOfTheControllerChain(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{UID: "d"}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{UID: "rs", OwnerReferences: controlledBy("d")}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "p", OwnerReferences: controlledBy("rs")}}
	bare := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "bare"}}
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "o", OwnerReferences: controlledBy("gone")}}
	loop := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "l", OwnerReferences: controlledBy("a")}}
	c := Chain{"rs": "d", "a": "b", "b": "a"}
	for _, tc := range []struct {
		obj  metav1.Object
		want types.UID
	}{{d, "d"}, {rs, "d"}, {pod, "d"}, {bare, "bare"}, {orphan, "gone"}} {
		if got := c.WorkloadKey(tc.obj); got != tc.want {
			t.Errorf("key of %s: %s, want %s", tc.obj.GetUID(), got, tc.want)
		}
	}
	if got := c.WorkloadKey(loop); got != "a" && got != "b" {
		t.Errorf("key in a cycle: %s", got)
	}
}
