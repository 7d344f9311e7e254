package objects

import (
	"context"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestHorizontalPodAutoscalerValidationAndDefaults(t *testing.T) {
	o, _ := newTestObjects(t)
	ctx := context.Background()
	ref := autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}
	cpu := func(target autoscalingv2.MetricTarget) autoscalingv2.MetricSpec {
		return autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU, Target: target}}
	}
	for _, tc := range []struct {
		name  string
		spec  autoscalingv2.HorizontalPodAutoscalerSpec
		field string
	}{
		{"no target name", autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment"}, MaxReplicas: 2}, "spec.scaleTargetRef.name"},
		{"max below min", autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: ref, MinReplicas: new(int32(3)), MaxReplicas: 2}, "spec.maxReplicas"},
		{"min zero", autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: ref, MinReplicas: new(int32(0)), MaxReplicas: 2}, "spec.minReplicas"},
		{"utilization without a value", autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: ref, MaxReplicas: 2,
			Metrics: []autoscalingv2.MetricSpec{cpu(autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType})}}, "spec.metrics[0].resource.target.averageUtilization"},
		{"value target for a resource", autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: ref, MaxReplicas: 2,
			Metrics: []autoscalingv2.MetricSpec{cpu(autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: resource.NewQuantity(1, resource.DecimalSI)})}}, "spec.metrics[0].resource.target.type"},
		{"two sources", autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: ref, MaxReplicas: 2, Metrics: []autoscalingv2.MetricSpec{{
			Type: autoscalingv2.PodsMetricSourceType, Resource: cpu(autoscalingv2.MetricTarget{}).Resource, Pods: &autoscalingv2.PodsMetricSource{}}}}, "spec.metrics[0].resource"},
		{"policy period", autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: ref, MaxReplicas: 2, Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
			ScaleUp: &autoscalingv2.HPAScalingRules{Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 1, PeriodSeconds: 3600}}}}}, "spec.behavior.scaleUp.policies[0].periodSeconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantInvalid(t, o.Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: inDefault("h"), Spec: tc.spec}), tc.field)
		})
	}
	h := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: inDefault("ok"), Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: ref, MaxReplicas: 3,
		Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: new(int32(60))}}}}
	if err := o.Create(ctx, h); err != nil {
		t.Fatal(err)
	}
	if *h.Spec.MinReplicas != 1 || *h.Spec.Metrics[0].Resource.Target.AverageUtilization != 80 {
		t.Fatalf("defaults: min %v, metrics %+v; want 1 and 80%% CPU", h.Spec.MinReplicas, h.Spec.Metrics)
	}
	if b := h.Spec.Behavior; *b.ScaleDown.StabilizationWindowSeconds != 60 || len(b.ScaleDown.Policies) != 1 || len(b.ScaleUp.Policies) != 2 {
		t.Fatalf("behavior defaults: %+v / %+v", b.ScaleDown, b.ScaleUp)
	}
}
