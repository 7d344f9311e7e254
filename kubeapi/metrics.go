package kubeapi

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	admission *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mycel_apiserver_requests_total",
			Help: "API requests by verb, resource and HTTP status code.",
		}, []string{"verb", "resource", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mycel_apiserver_request_duration_seconds",
			Help:    "API request latency by verb and resource (watches and log streams last as long as the stream).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"verb", "resource"}),
		admission: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mycel_admission_decisions_total",
			Help: "Admission policy decisions by operation, resource and decision (allow or deny).",
		}, []string{"operation", "resource", "decision"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.admission} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observe(verb, resource string, code int, d time.Duration) {
	m.requests.WithLabelValues(verb, resource, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(verb, resource).Observe(d.Seconds())
}
