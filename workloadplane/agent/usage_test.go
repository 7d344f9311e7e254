package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// TestUsageRatesCPUOverTheWindow: CPU is the time used between two
// samples over their distance; memory is the latest; containers without
// two samples are left out.
func TestUsageRatesCPUOverTheWindow(t *testing.T) {
	h := newHarness(t)
	t0 := time.Unix(1_700_000_000, 0)
	labels := func(pod, ctr string) map[string]string {
		return map[string]string{rt.LabelNamespace: "default", rt.LabelPod: pod, rt.LabelPodUID: "uid-" + pod, rt.LabelContainer: ctr}
	}
	prev := &usageSample{at: t0, host: HostUsage{CPU: 10 * time.Second, Memory: 1 << 30},
		ctrs: map[string]rt.Stats{"a": {CPU: time.Second}, "b": {CPU: 3 * time.Second}}}
	cur := &usageSample{at: t0.Add(2 * time.Second), host: HostUsage{CPU: 13 * time.Second, Memory: 2 << 30},
		ctrs: map[string]rt.Stats{"a": {CPU: 2 * time.Second, Memory: 50 << 20}, "b": {CPU: 3 * time.Second, Memory: 1 << 20}, "new": {CPU: time.Second}}}
	rep := h.agent.usageReport(prev, cur, []rt.Container{
		{ID: "b", State: rt.StateRunning, Labels: labels("web", "sidecar")},
		{ID: "a", State: rt.StateRunning, Labels: labels("web", "app")},
		{ID: "new", State: rt.StateRunning, Labels: labels("fresh", "app")},
	})
	if cpu, mem := rep.Node.Usage.Cpu().MilliValue(), rep.Node.Usage.Memory().Value(); cpu != 1500 || mem != 2<<30 || rep.Node.Window.Duration != 2*time.Second {
		t.Fatalf("node usage %dm %d over %v, want 1500m 2Gi over 2s", cpu, mem, rep.Node.Window.Duration)
	}
	if len(rep.Pods) != 1 || rep.Pods[0].Name != "web" || len(rep.Pods[0].Containers) != 2 {
		t.Fatalf("pods %+v, want web alone (fresh has one sample)", rep.Pods)
	}
	app := rep.Pods[0].Containers[0]
	if app.Name != "app" || app.Usage.Cpu().MilliValue() != 500 || app.Usage.Memory().Value() != 50<<20 {
		t.Fatalf("app usage %+v, want 500m and 50Mi", app)
	}
	if side := rep.Pods[0].Containers[1]; side.Usage.Cpu().MilliValue() != 0 {
		t.Fatalf("idle sidecar uses %v", side.Usage.Cpu())
	}
}

// TestFabricUsage gathers a node's report through its streaming server,
// labelled as the pods and nodes are.
func TestFabricUsage(t *testing.T) {
	h := newHarness(t)
	host := HostUsage{CPU: time.Minute, Memory: 3 << 30}
	h.agent.cfg.HostUsage = func() (HostUsage, error) { return host, nil }
	p := h.pod("web", corev1.RestartPolicyAlways, image)
	p.Labels = map[string]string{"app": "web"}
	if err := h.objs.Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	h.sync()
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{"zone": "z1"}}}
	if err := h.objs.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	if err := h.objs.UpdateStatus(ctx, node); err != nil {
		t.Fatal(err)
	}
	handler := h.agent.StreamHandler()
	u := &FabricUsage{Client: h.objs, Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		if r.URL.Host != "node-1" {
			t.Errorf("asked node %s", r.URL.Host)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, r)
		return rec.Result(), nil
	})}
	pods, err := u.PodMetrics(ctx, "default")
	if err != nil || len(pods) != 1 || pods[0].Name != "web" || pods[0].Labels["app"] != "web" {
		t.Fatalf("pod metrics %+v, %v", pods, err)
	}
	if mem := pods[0].Containers[0].Usage.Memory().Value(); mem != 1<<20 {
		t.Fatalf("web memory %d, want the runtime's 1Mi", mem)
	}
	nodes, err := u.NodeMetrics(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Labels["zone"] != "z1" || nodes[0].Usage.Memory().Value() != 3<<30 {
		t.Fatalf("node metrics %+v, %v", nodes, err)
	}
	if pods, err := u.PodMetrics(ctx, "other"); err != nil || len(pods) != 0 {
		t.Fatalf("another namespace: %+v, %v", pods, err)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
