package sched

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func ledgerPod(uid, node, cpu string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid)},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}},
		Status: corev1.PodStatus{Phase: phase},
	}
}

// TestLedgerFollowsPods: the account counts exactly the active pods bound
// to its node through binds, changes, completions, deletions and relists,
// and a bound set already handed out never changes under its holder.
func TestLedgerFollowsPods(t *testing.T) {
	l := NewLedger("n1")
	if _, _, synced := l.Usage(); synced {
		t.Fatal("synced before the first Reset")
	}
	l.Reset([]corev1.Pod{*ledgerPod("a", "n1", "100m", corev1.PodRunning), *ledgerPod("b", "n2", "100m", corev1.PodRunning)})
	l.Observe(ledgerPod("c", "", "50m", corev1.PodPending)) // not bound yet
	l.Observe(ledgerPod("c", "n1", "50m", corev1.PodPending))
	used, bound, synced := l.Usage()
	if !synced || used != (Resources{MilliCPU: 150, Pods: 2}) || len(bound) != 2 || !bound["a"] || !bound["c"] {
		t.Fatalf("after binds: %+v %v %v", used, bound, synced)
	}
	held := bound
	l.Observe(ledgerPod("c", "n1", "50m", corev1.PodSucceeded))
	l.Observe(ledgerPod("a", "n1", "200m", corev1.PodRunning)) // a changed request
	if used, bound, _ = l.Usage(); used != (Resources{MilliCPU: 200, Pods: 1}) || len(bound) != 1 || !bound["a"] {
		t.Fatalf("after completion and change: %+v %v", used, bound)
	}
	if len(held) != 2 || !held["c"] {
		t.Fatalf("a bound set handed out changed: %v", held)
	}
	l.Forget("a")
	l.Forget("never-seen")
	if used, bound, _ = l.Usage(); used != (Resources{}) || len(bound) != 0 {
		t.Fatalf("after deletion: %+v %v", used, bound)
	}
	l.Reset([]corev1.Pod{*ledgerPod("d", "n1", "10m", corev1.PodRunning)})
	if used, bound, _ = l.Usage(); used != (Resources{MilliCPU: 10, Pods: 1}) || !bound["d"] {
		t.Fatalf("after relist: %+v %v", used, bound)
	}
}
