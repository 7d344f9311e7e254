package objects

import (
	"context"
	"testing"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestPodDisruptionBudgetValidation(t *testing.T) {
	o, _ := newTestObjects(t)
	ctx := context.Background()
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	for _, tc := range []struct {
		name  string
		spec  policyv1.PodDisruptionBudgetSpec
		field string
	}{
		{"both set", policyv1.PodDisruptionBudgetSpec{Selector: sel, MinAvailable: new(intstr.FromInt32(1)), MaxUnavailable: new(intstr.FromInt32(1))}, "cannot be both set"},
		{"negative", policyv1.PodDisruptionBudgetSpec{Selector: sel, MinAvailable: new(intstr.FromInt32(-1))}, "spec.minAvailable"},
		{"over 100%", policyv1.PodDisruptionBudgetSpec{Selector: sel, MaxUnavailable: new(intstr.FromString("120%"))}, "spec.maxUnavailable"},
		{"not a percentage", policyv1.PodDisruptionBudgetSpec{Selector: sel, MaxUnavailable: new(intstr.FromString("half"))}, "spec.maxUnavailable"},
		{"policy", policyv1.PodDisruptionBudgetSpec{Selector: sel, UnhealthyPodEvictionPolicy: new(policyv1.UnhealthyPodEvictionPolicyType("Sometimes"))}, "spec.unhealthyPodEvictionPolicy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantInvalid(t, o.Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: inDefault("b"), Spec: tc.spec}), tc.field)
		})
	}
	ok := &policyv1.PodDisruptionBudget{ObjectMeta: inDefault("ok"), Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: new(intstr.FromString("50%"))}}
	if err := o.Create(ctx, ok); err != nil || ok.Spec.Selector == nil {
		t.Fatalf("budget without a selector: %v, selector %v (policy/v1 defaults it to every pod)", err, ok.Spec.Selector)
	}
}
