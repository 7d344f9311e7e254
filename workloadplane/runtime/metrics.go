package runtime

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metered times every operation of the Runtime it wraps.
type metered struct {
	Runtime
	latency *prometheus.HistogramVec
}

// Metered wraps r so that every operation is timed in
// mycel_runtime_operation_duration_seconds{operation, result}, result
// "ok" or "error", registered with reg.
func Metered(r Runtime, reg prometheus.Registerer) (Runtime, error) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mycel_runtime_operation_duration_seconds",
		Help:    "Container runtime operation latency by operation and result (ok or error).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
	}, []string{"operation", "result"})
	if err := reg.Register(h); err != nil {
		return nil, err
	}
	return &metered{Runtime: r, latency: h}, nil
}

// observe records one operation begun at start. Callers defer it in a
// closure (defer func() { m.observe(op, start, err) }()): a deferred call's
// arguments are evaluated when the defer statement runs, which would record
// every operation as ok.
func (m *metered) observe(op string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.latency.WithLabelValues(op, result).Observe(time.Since(start).Seconds())
}

func (m *metered) EnsureImage(ctx context.Context, image string, pull bool) (err error) {
	start := time.Now()
	defer func() { m.observe("ensure_image", start, err) }()
	return m.Runtime.EnsureImage(ctx, image, pull)
}

func (m *metered) Create(ctx context.Context, spec Spec) (id string, err error) {
	start := time.Now()
	defer func() { m.observe("create", start, err) }()
	return m.Runtime.Create(ctx, spec)
}

func (m *metered) Start(ctx context.Context, id string) (err error) {
	start := time.Now()
	defer func() { m.observe("start", start, err) }()
	return m.Runtime.Start(ctx, id)
}

func (m *metered) Stop(ctx context.Context, id string, timeout time.Duration) (err error) {
	start := time.Now()
	defer func() { m.observe("stop", start, err) }()
	return m.Runtime.Stop(ctx, id, timeout)
}

func (m *metered) Remove(ctx context.Context, id string) (err error) {
	start := time.Now()
	defer func() { m.observe("remove", start, err) }()
	return m.Runtime.Remove(ctx, id)
}

func (m *metered) List(ctx context.Context, labels map[string]string) (cs []Container, err error) {
	start := time.Now()
	defer func() { m.observe("list", start, err) }()
	return m.Runtime.List(ctx, labels)
}
