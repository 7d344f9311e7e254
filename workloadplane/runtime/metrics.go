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
// "ok" or "error", registered with reg. The wrapper implements the optional
// interfaces (Execer, Sandboxes) that r implements, and only those.
func Metered(r Runtime, reg prometheus.Registerer) (Runtime, error) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mycel_runtime_operation_duration_seconds",
		Help:    "Container runtime operation latency by operation and result (ok or error).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
	}, []string{"operation", "result"})
	if err := reg.Register(h); err != nil {
		return nil, err
	}
	m := &metered{Runtime: r, latency: h}
	ex, isExec := r.(Execer)
	sb, isSandboxes := r.(Sandboxes)
	switch {
	case isExec && isSandboxes:
		return struct {
			*metered
			execMeter
			sandboxMeter
		}{m, execMeter{m, ex}, sandboxMeter{m, sb}}, nil
	case isExec:
		return struct {
			*metered
			execMeter
		}{m, execMeter{m, ex}}, nil
	case isSandboxes:
		return struct {
			*metered
			sandboxMeter
		}{m, sandboxMeter{m, sb}}, nil
	}
	return m, nil
}

// Unwrap returns the runtime measured, for As to find the optional
// interfaces that are not timed (Attacher, PortDialer: their calls last as
// long as a user's session).
func (m *metered) Unwrap() Runtime { return m.Runtime }

// execMeter times Exec.
type execMeter struct {
	m  *metered
	ex Execer
}

func (e execMeter) Exec(ctx context.Context, id string, opts ExecOptions) (code int, err error) {
	start := time.Now()
	defer func() { e.m.observe("exec", start, err) }()
	return e.ex.Exec(ctx, id, opts)
}

// sandboxMeter times the Sandboxes operations.
type sandboxMeter struct {
	m  *metered
	sb Sandboxes
}

func (s sandboxMeter) CreateSandbox(ctx context.Context, spec SandboxSpec) (out Sandbox, err error) {
	start := time.Now()
	defer func() { s.m.observe("create_sandbox", start, err) }()
	return s.sb.CreateSandbox(ctx, spec)
}

func (s sandboxMeter) ListSandboxes(ctx context.Context, labels map[string]string) (out []Sandbox, err error) {
	start := time.Now()
	defer func() { s.m.observe("list_sandboxes", start, err) }()
	return s.sb.ListSandboxes(ctx, labels)
}

func (s sandboxMeter) RemoveSandbox(ctx context.Context, id string) (err error) {
	start := time.Now()
	defer func() { s.m.observe("remove_sandbox", start, err) }()
	return s.sb.RemoveSandbox(ctx, id)
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
