package kubeapi

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	"k8s.io/utils/ptr"
)

// fixedMetrics reports two pods in default and one node.
type fixedMetrics struct{}

func usageOf(cpu, mem string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
}

func (fixedMetrics) NodeMetrics(context.Context) ([]metricsv1beta1.NodeMetrics, error) {
	return []metricsv1beta1.NodeMetrics{{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"zone": "a"}},
		Window: metav1.Duration{Duration: time.Second}, Usage: usageOf("250m", "1Gi")}}, nil
}

func (fixedMetrics) PodMetrics(_ context.Context, ns string) ([]metricsv1beta1.PodMetrics, error) {
	all := []metricsv1beta1.PodMetrics{
		{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", Labels: map[string]string{"app": "web"}},
			Containers: []metricsv1beta1.ContainerMetrics{{Name: "c", Usage: usageOf("100m", "10Mi")}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "db-1", Namespace: "default", Labels: map[string]string{"app": "db"}},
			Containers: []metricsv1beta1.ContainerMetrics{{Name: "c", Usage: usageOf("5m", "20Mi")}}},
	}
	return slices.DeleteFunc(all, func(m metricsv1beta1.PodMetrics) bool { return ns != "" && m.Namespace != ns }), nil
}

// TestMetricsAPI reads metrics.k8s.io with the clients kubectl top uses:
// discovery finds the group, lists filter by label, a missing pod is 404
// and the API is read only.
func TestMetricsAPI(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dc := discovery.NewDiscoveryClientForConfigOrDie(f.config)
	groups, err := dc.ServerGroups()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(groups.Groups, func(g metav1.APIGroup) bool {
		return g.Name == "metrics.k8s.io" && g.PreferredVersion.Version == "v1beta1"
	}) {
		t.Fatalf("discovery lacks metrics.k8s.io/v1beta1: %+v", groups.Groups)
	}
	mc := metricsclient.NewForConfigOrDie(f.config)
	pods, err := mc.MetricsV1beta1().PodMetricses("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Name != "web-1" {
		t.Fatalf("pods app=web: %+v, %v", pods, err)
	}
	if cpu := pods.Items[0].Containers[0].Usage.Cpu().MilliValue(); cpu != 100 {
		t.Fatalf("web-1 cpu = %dm, want 100m", cpu)
	}
	if _, err := mc.MetricsV1beta1().PodMetricses("default").Get(ctx, "nope", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get a pod without metrics: %v, want 404", err)
	}
	node, err := mc.MetricsV1beta1().NodeMetricses().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil || node.Usage.Memory().Value() != 1<<30 {
		t.Fatalf("node n1: %+v, %v", node, err)
	}
	if code, _, _ := f.do(t, f.http, http.MethodDelete, "/apis/metrics.k8s.io/v1beta1/nodes/n1", "", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE node metrics: %d, want 405", code)
	}
	if code, _, _ := f.do(t, f.http, http.MethodGet, "/apis/metrics.k8s.io/v1beta1/nodes?watch=true", "", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("watch node metrics: %d, want 405", code)
	}
}

// TestAutoscalingV1Create: `kubectl autoscale` creates autoscaling/v1
// autoscalers, which are stored and served as autoscaling/v2.
func TestAutoscalingV1Create(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	hpa := &autoscalingv1.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MaxReplicas:    4, TargetCPUUtilizationPercentage: ptr.To[int32](60),
		}}
	got, err := f.client.AutoscalingV1().HorizontalPodAutoscalers("default").Create(ctx, hpa, metav1.CreateOptions{})
	if err != nil || got.UID == "" || *got.Spec.TargetCPUUtilizationPercentage != 60 || *got.Spec.MinReplicas != 1 {
		t.Fatalf("v1 create: %+v, %v", got, err)
	}
	v2, err := f.client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil || len(v2.Spec.Metrics) != 1 || *v2.Spec.Metrics[0].Resource.Target.AverageUtilization != 60 {
		t.Fatalf("v2 view: %+v, %v", v2, err)
	}
	if _, err := f.client.AutoscalingV1().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), "autoscaling/v2") {
		t.Fatalf("v1 get: %v, want 404 pointing to autoscaling/v2", err)
	}
	hpa.Name, hpa.Spec.MaxReplicas = "bad", 0
	if _, err := f.client.AutoscalingV1().HorizontalPodAutoscalers("default").Create(ctx, hpa, metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.maxReplicas") {
		t.Fatalf("v1 create of maxReplicas 0: %v, want 422 on spec.maxReplicas", err)
	}
}

// TestReviewsInDiscovery: `kubectl api-resources` lists the review APIs
// this server answers, as kube-apiserver does.
func TestReviewsInDiscovery(t *testing.T) {
	f := newFixture(t)
	dc := discovery.NewDiscoveryClientForConfigOrDie(f.config)
	_, lists, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"authentication.k8s.io/v1/selfsubjectreviews": false, "authorization.k8s.io/v1/selfsubjectaccessreviews": false,
		"authorization.k8s.io/v1/subjectaccessreviews": false}
	for _, l := range lists {
		for _, r := range l.APIResources {
			if _, ok := want[l.GroupVersion+"/"+r.Name]; ok && slices.Equal(r.Verbs, []string{"create"}) {
				want[l.GroupVersion+"/"+r.Name] = true
			}
		}
	}
	for name, found := range want {
		if !found {
			t.Errorf("discovery lacks %s (verb create)", name)
		}
	}
}
