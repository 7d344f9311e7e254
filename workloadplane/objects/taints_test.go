package objects

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTaintAndTolerationValidation(t *testing.T) {
	o, _ := newTestObjects(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		tol   corev1.Toleration
		field string
	}{
		{"empty key needs Exists", corev1.Toleration{Operator: corev1.TolerationOpEqual, Value: "x"}, "spec.tolerations[0].operator"},
		{"Exists with a value", corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Value: "x"}, "value must be empty"},
		{"seconds without NoExecute", corev1.Toleration{Key: "k", Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: new(int64(5))}, "effect must be 'NoExecute'"},
		{"unknown effect", corev1.Toleration{Key: "k", Effect: "Sometimes"}, "spec.tolerations[0].effect"},
		{"unknown operator", corev1.Toleration{Key: "k", Operator: "Gt"}, "spec.tolerations[0].operator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: inDefault("p"), Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}, Tolerations: []corev1.Toleration{tc.tol}}}
			wantInvalid(t, o.Create(ctx, p), tc.field)
		})
	}

	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "a", Effect: corev1.TaintEffectNoExecute}}}}
	if err := o.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	if n.Spec.Taints[0].TimeAdded == nil {
		t.Fatal("NoExecute taint stored without timeAdded")
	}
	for _, bad := range []struct {
		taints []corev1.Taint
		field  string
	}{
		{[]corev1.Taint{{Key: "a", Effect: "Never"}}, "spec.taints[0].effect"},
		{[]corev1.Taint{{Key: "a"}}, "spec.taints[0].effect"},
		{[]corev1.Taint{{Key: "bad key!", Effect: corev1.TaintEffectNoSchedule}}, "spec.taints[0].key"},
		{[]corev1.Taint{{Key: "a", Effect: corev1.TaintEffectNoSchedule}, {Key: "a", Value: "2", Effect: corev1.TaintEffectNoSchedule}}, "unique by key and effect"},
	} {
		n.Spec.Taints = bad.taints
		wantInvalid(t, o.Update(ctx, n), bad.field)
	}
}
