package controller

import (
	"context"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// podCPU reports every pod of the namespace using cpu.
type podCPU struct {
	h   *harness
	cpu string
}

func (p *podCPU) PodMetrics(_ context.Context, ns string) ([]metricsv1beta1.PodMetrics, error) {
	var out []metricsv1beta1.PodMetrics
	for _, pod := range p.h.pods() {
		out = append(out, metricsv1beta1.PodMetrics{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: ns},
			Containers: []metricsv1beta1.ContainerMetrics{{Name: "c", Usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(p.cpu)}}}})
	}
	return out, nil
}

func (h *harness) hpa(name string, metrics ...autoscalingv2.MetricSpec) {
	h.t.Helper()
	hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			MaxReplicas:    20, Metrics: metrics,
		}}
	if err := h.objs.Create(h.ctx, hpa); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) hpaStatus(name string) autoscalingv2.HorizontalPodAutoscalerStatus {
	h.t.Helper()
	hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	if err := h.objs.Get(h.ctx, hpa); err != nil {
		h.t.Fatal(err)
	}
	return hpa.Status
}

func hpaCondition(st autoscalingv2.HorizontalPodAutoscalerStatus, t autoscalingv2.HorizontalPodAutoscalerConditionType) autoscalingv2.HorizontalPodAutoscalerCondition {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c
		}
	}
	return autoscalingv2.HorizontalPodAutoscalerCondition{}
}

// TestAutoscalerScalesOnCPU: with the default behavior an autoscaler
// scales up at once but no faster than the larger of doubling or four more
// pods per 15 s, and scales down only after five minutes of lower
// recommendations.
func TestAutoscalerScalesOnCPU(t *testing.T) {
	h := newHarness(t)
	now := time.Unix(1_700_000_000, 0)
	usage := &podCPU{h: h, cpu: "200m"}
	m, err := New(Config{Client: h.objs, Now: func() time.Time { return now }, Metrics: usage})
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	d := h.deployment("web", 1, intstr.FromInt32(1), intstr.FromInt32(0))
	d.Spec.Template.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
	if err := h.objs.Update(h.ctx, d); err != nil {
		t.Fatal(err)
	}
	h.settle()
	h.hpa("web") // the default metric: 80% of the CPU request

	expect := func(replicas int32, able, limited string) {
		t.Helper()
		h.settle()
		st := h.hpaStatus("web")
		if got := *h.get("web").Spec.Replicas; got != replicas {
			t.Fatalf("deployment has %d replicas, want %d; status %+v", got, replicas, st)
		}
		if c := hpaCondition(st, autoscalingv2.AbleToScale); c.Reason != able {
			t.Errorf("AbleToScale %s (%s), want %s", c.Reason, c.Message, able)
		}
		if c := hpaCondition(st, autoscalingv2.ScalingLimited); c.Reason != limited {
			t.Errorf("ScalingLimited %s (%s), want %s", c.Reason, c.Message, limited)
		}
		if c := hpaCondition(st, autoscalingv2.ScalingActive); c.Status != corev1.ConditionTrue {
			t.Errorf("ScalingActive %+v", c)
		}
	}
	// 200% of the request against 80%: ceil(1 × 2.5) = 3.
	expect(3, "SucceededRescale", "DesiredWithinRange")
	if u := h.hpaStatus("web").CurrentMetrics[0].Resource.Current.AverageUtilization; u == nil || *u != 200 {
		t.Fatalf("current utilization %v, want 200", u)
	}
	// Within the sync period nothing is evaluated again.
	now = now.Add(5 * time.Second)
	expect(3, "SucceededRescale", "DesiredWithinRange")
	// 3 × 2.5 = 8 wanted; 15 s after the last scale-up the policies allow
	// max(3+4, 3×2) = 7.
	now = now.Add(10 * time.Second)
	expect(7, "SucceededRescale", "ScaleUpLimit")
	// Load falls to 20%: the recommendation is 2, but recent ones were
	// higher, so the count holds for the stabilization window.
	usage.cpu = "20m"
	now = now.Add(15 * time.Second)
	expect(7, "ScaleDownStabilized", "DesiredWithinRange")
	now = now.Add(301 * time.Second)
	expect(2, "SucceededRescale", "DesiredWithinRange")
}

// TestAutoscalerWithoutUsableMetrics reports why it cannot scale.
func TestAutoscalerWithoutUsableMetrics(t *testing.T) {
	h := newHarness(t)
	h.deployment("web", 1, intstr.FromInt32(1), intstr.FromInt32(0))
	h.settle()
	h.hpa("web", autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
		Metric: autoscalingv2.MetricIdentifier{Name: "requests"}, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: resource.NewQuantity(1, resource.DecimalSI)}}})
	h.settle()
	if c := hpaCondition(h.hpaStatus("web"), autoscalingv2.ScalingActive); c.Status != corev1.ConditionFalse || c.Reason != "FailedGetPodsMetric" {
		t.Fatalf("ScalingActive %+v, want False FailedGetPodsMetric", c)
	}
	h.hpa("other") // its target does not exist
	h.settle()
	if c := hpaCondition(h.hpaStatus("other"), autoscalingv2.AbleToScale); c.Status != corev1.ConditionFalse || c.Reason != "FailedGetScale" {
		t.Fatalf("AbleToScale %+v, want False FailedGetScale", c)
	}
}

// TestResourceReplicas follows Kubernetes' replica calculator where pods
// lack metrics or readiness.
func TestResourceReplicas(t *testing.T) {
	target := autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr[int32](50)}
	pod := func(name string, ready bool) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
		p.Spec.Containers = []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}
		if ready {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}
		return p
	}
	use := func(cpu string) metricsv1beta1.PodMetrics {
		return metricsv1beta1.PodMetrics{Containers: []metricsv1beta1.ContainerMetrics{{Name: "c", Usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}
	}
	for _, tc := range []struct {
		name  string
		pods  []corev1.Pod
		usage map[string]metricsv1beta1.PodMetrics
		want  int32
	}{
		{"within tolerance", []corev1.Pod{pod("a", true), pod("b", true)}, map[string]metricsv1beta1.PodMetrics{"a": use("52m"), "b": use("52m")}, 2},
		{"up", []corev1.Pod{pod("a", true), pod("b", true)}, map[string]metricsv1beta1.PodMetrics{"a": use("100m"), "b": use("100m")}, 4},
		// The missing pod counts as idle when scaling up: 200m of 300m
		// requested is 133% of 50%: ceil(1.33 × 3) = 4.
		{"up with a pod missing", []corev1.Pod{pod("a", true), pod("b", true), pod("c", true)}, map[string]metricsv1beta1.PodMetrics{"a": use("100m"), "b": use("100m")}, 4},
		// ... and as at its target when scaling down: 10m + 50m of 200m is
		// 30% of 50%: ceil(0.6 × 2) = 2, no change.
		{"down with a pod missing", []corev1.Pod{pod("a", true), pod("b", true)}, map[string]metricsv1beta1.PodMetrics{"a": use("10m")}, 2},
		// An unready pod counts as idle in a scale-up, whatever it uses:
		// 200m of 200m is 100% of 50%: ceil(2 × 2) = 4 (not 6).
		{"up with an unready pod", []corev1.Pod{pod("a", true), pod("b", false)}, map[string]metricsv1beta1.PodMetrics{"a": use("200m"), "b": use("100m")}, 4},
	} {
		got, _, err := resourceReplicas(2, tc.pods, tc.usage, corev1.ResourceCPU, "", target)
		if err != nil || got != tc.want {
			t.Errorf("%s: %d replicas (%v), want %d", tc.name, got, err, tc.want)
		}
	}
}
