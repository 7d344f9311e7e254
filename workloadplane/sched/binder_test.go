package sched

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name string, ready bool, labels map[string]string) corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}}}
}

func TestChooseSpreadsAndExplains(t *testing.T) {
	nodes := []corev1.Node{
		node("a", true, map[string]string{"zone": "z1"}),
		node("b", true, map[string]string{"zone": "z2"}),
		node("c", false, map[string]string{"zone": "z1"}),
		node("d", true, map[string]string{"zone": "z1", LabelUnschedulable: "true"}),
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "p1"}}
	if got, _ := choose(pod, nodes, map[string]int{"a": 3, "b": 1}); got != "b" {
		t.Errorf("chose %q, want the least-loaded ready node b", got)
	}
	pod.Spec.NodeSelector = map[string]string{"zone": "z1"}
	if got, _ := choose(pod, nodes, map[string]int{"a": 3, "b": 1}); got != "a" {
		t.Errorf("chose %q, want a, the only ready schedulable node in z1", got)
	}
	pod.Spec.NodeSelector = map[string]string{"zone": "z9"}
	got, why := choose(pod, nodes, nil)
	want := "0/4 nodes are available: 1 node(s) were not ready, 1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector."
	if got != "" || why != want {
		t.Errorf("choose = %q, %q; want none, %q", got, why, want)
	}
}
