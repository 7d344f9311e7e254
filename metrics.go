package mycel

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/mycelfabric/mycel/workloadplane/objects"
	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// podCollector reports pods by phase from the store at scrape time.
type podCollector struct {
	objs *objects.Objects
	desc *prometheus.Desc
}

func registerPodMetrics(reg prometheus.Registerer, objs *objects.Objects) {
	reg.MustRegister(&podCollector{objs: objs, desc: prometheus.NewDesc("mycel_pods", "Pods in the fabric by phase.", []string{"phase"}, nil)})
}

func (c *podCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *podCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var pods corev1.PodList
	if err := c.objs.List(ctx, &pods, "", nil); err != nil {
		return
	}
	counts := map[corev1.PodPhase]float64{corev1.PodPending: 0, corev1.PodRunning: 0, corev1.PodSucceeded: 0, corev1.PodFailed: 0}
	for _, p := range pods.Items {
		counts[p.Status.Phase]++
	}
	for phase, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, n, string(phase))
	}
}

// meteredRuntime times every runtime operation.
type meteredRuntime struct {
	rt.Runtime
	latency *prometheus.HistogramVec
}

func newMeteredRuntime(r rt.Runtime, reg prometheus.Registerer) rt.Runtime {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mycel_runtime_operation_duration_seconds",
		Help:    "Container runtime operation latency by operation and result (ok or error).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
	}, []string{"operation", "result"})
	reg.MustRegister(h)
	return &meteredRuntime{Runtime: r, latency: h}
}

func (m *meteredRuntime) observe(op string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.latency.WithLabelValues(op, result).Observe(time.Since(start).Seconds())
}

func (m *meteredRuntime) EnsureImage(ctx context.Context, image string, pull bool) (err error) {
	defer m.observe("ensure_image", time.Now(), err)
	return m.Runtime.EnsureImage(ctx, image, pull)
}

func (m *meteredRuntime) Create(ctx context.Context, spec rt.Spec) (id string, err error) {
	defer m.observe("create", time.Now(), err)
	return m.Runtime.Create(ctx, spec)
}

func (m *meteredRuntime) Start(ctx context.Context, id string) (err error) {
	defer m.observe("start", time.Now(), err)
	return m.Runtime.Start(ctx, id)
}

func (m *meteredRuntime) Stop(ctx context.Context, id string, timeout time.Duration) (err error) {
	defer m.observe("stop", time.Now(), err)
	return m.Runtime.Stop(ctx, id, timeout)
}

func (m *meteredRuntime) Remove(ctx context.Context, id string) (err error) {
	defer m.observe("remove", time.Now(), err)
	return m.Runtime.Remove(ctx, id)
}

func (m *meteredRuntime) List(ctx context.Context, labels map[string]string) (cs []rt.Container, err error) {
	defer m.observe("list", time.Now(), err)
	return m.Runtime.List(ctx, labels)
}
