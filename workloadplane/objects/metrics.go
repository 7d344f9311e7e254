package objects

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
)

// podCollector reports the fabric's pods by phase, read from the store at
// scrape time.
type podCollector struct {
	objs *Objects
	desc *prometheus.Desc
}

// RegisterPodMetrics registers mycel_pods{phase} with reg.
func RegisterPodMetrics(reg prometheus.Registerer, o *Objects) error {
	return reg.Register(&podCollector{objs: o, desc: prometheus.NewDesc("mycel_pods", "Pods in the fabric by phase.", []string{"phase"}, nil)})
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
