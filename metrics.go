package mycel

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/mycelfabric/mycel/kubeapi"
)

// podCollector reports pods by phase from the store at scrape time.
type podCollector struct {
	objs *kubeapi.Objects
	desc *prometheus.Desc
}

func registerPodMetrics(reg prometheus.Registerer, objs *kubeapi.Objects) {
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
