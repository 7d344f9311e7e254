package controller

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// Client is the object access the controllers need.
type Client interface {
	Get(ctx context.Context, obj objects.Object) error
	List(ctx context.Context, list runtime.Object, namespace string, sel labels.Selector) error
	Create(ctx context.Context, obj objects.Object) error
	Update(ctx context.Context, obj objects.Object) error
	UpdateStatus(ctx context.Context, obj objects.Object) error
	Delete(ctx context.Context, obj objects.Object, gracePeriodSeconds *int64) error
	DeleteWith(ctx context.Context, obj objects.Object, opts objects.DeleteOptions) error
	Record(ctx context.Context, obj objects.Object, component, eventType, reason, message string) error
	Notify(ctx context.Context, resource string, kick chan<- struct{})
	// Resources lists every served resource (namespace deletion and
	// garbage collection act on all of them).
	Resources() []*objects.Resource
	// Gone reports whether the object namespace/name of r with UID uid is
	// known to have been deleted (objects.Collection.Gone).
	Gone(r *objects.Resource, namespace, name string, uid types.UID) bool
	// Chain reads the chain of controllers that workload keys follow.
	Chain(ctx context.Context) (objects.Chain, error)
}

// Config configures the controllers.
type Config struct {
	Client Client
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Resync is how often everything is reconciled without changes; zero
	// means 10 seconds.
	Resync time.Duration
	// Owns reports whether this node reconciles the object keyed by uid:
	// the workload key (objects.Chain.WorkloadKey) of a workload (a
	// Deployment, ReplicaSet, DaemonSet, Job or CronJob) or orphan, a
	// Namespace's or an Event's UID. Nil means this node owns everything.
	Owns func(uid types.UID) bool
	// Metrics is the pods' resource usage, for HorizontalPodAutoscalers;
	// nil leaves them inactive (ScalingActive=False).
	Metrics PodMetrics
}

// Manager runs the workload controllers.
type Manager struct {
	cfg  Config
	c    Client
	log  *slog.Logger
	kick chan struct{}
	// chain is the controller chain of the current reconciliation (read
	// once per ReconcileAll, which runs on one goroutine).
	chain objects.Chain
	// wake is the earliest time a controller of the last ReconcileAll
	// asked to run again (a CronJob's next schedule time); zero if none.
	wake time.Time
	// hpas is what the autoscaler remembers of the autoscalers this node
	// owns.
	hpas map[types.UID]*hpaState
}

// New returns a controller manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Client == nil {
		return nil, errors.New("controller: Config.Client is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Resync == 0 {
		cfg.Resync = 10 * time.Second
	}
	if cfg.Owns == nil {
		cfg.Owns = func(types.UID) bool { return true }
	}
	return &Manager{cfg: cfg, c: cfg.Client, log: cfg.Logger, kick: make(chan struct{}, 1), hpas: map[types.UID]*hpaState{}}, nil
}

// watched are the resources whose changes trigger reconciliation.
// Nodes are watched for DaemonSets: a node that joins gets its daemon
// pods at once.
var watched = []string{"namespaces", "serviceaccounts", "deployments", "replicasets", "daemonsets", "jobs", "cronjobs", "poddisruptionbudgets", "horizontalpodautoscalers", "customresourcedefinitions", "pods", "nodes"}

// Run reconciles until ctx is done.
func (m *Manager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, res := range watched {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.c.Notify(ctx, res, m.kick)
		}()
	}
	for {
		start := time.Now()
		m.ReconcileAll(ctx)
		took := time.Since(start)
		next := m.cfg.Resync
		if !m.wake.IsZero() {
			next = min(next, max(m.wake.Sub(m.cfg.Now()), 0))
		}
		timer := time.NewTimer(next)
		select {
		case <-ctx.Done():
			timer.Stop()
			wg.Wait()
			return
		case <-m.kick:
		case <-timer.C:
		}
		timer.Stop()
		// Under a stream of changes (a heal merging thousands of objects)
		// reconcile at most half the time: every pass lists what its
		// controllers reconcile, and passes back to back would take the
		// CPU from the merges that bring the changes in.
		if rest := time.Until(start.Add(2 * took)); rest > 0 {
			timer := time.NewTimer(rest)
			select {
			case <-ctx.Done():
				timer.Stop()
				wg.Wait()
				return
			case <-timer.C:
			}
		}
	}
}

// wakeAt asks Run to reconcile again at t, if that is sooner than the
// resync.
func (m *Manager) wakeAt(t time.Time) {
	if m.wake.IsZero() || t.Before(m.wake) {
		m.wake = t
	}
}

// Kick makes Run reconcile now (ownership changed, say).
func (m *Manager) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// ReconcileAll runs every controller once.
func (m *Manager) ReconcileAll(ctx context.Context) {
	chain, err := m.c.Chain(ctx)
	if err != nil {
		m.log.Warn("reconcile: read controller chain", "err", err)
		return
	}
	m.chain = chain
	m.wake = time.Time{}
	for _, step := range []struct {
		name string
		fn   func(context.Context) error
	}{
		{"namespaces", m.reconcileNamespaces},
		{"serviceaccounts", m.reconcileServiceAccounts},
		{"deployments", m.reconcileDeployments},
		{"replicasets", m.reconcileReplicaSets},
		{"daemonsets", m.reconcileDaemonSets},
		{"jobs", m.reconcileJobs},
		{"cronjobs", m.reconcileCronJobs},
		{"poddisruptionbudgets", m.reconcileDisruptionBudgets},
		{"horizontalpodautoscalers", m.reconcileAutoscalers},
		{"customresourcedefinitions", m.reconcileCRDs},
		{"garbage collection", m.collectGarbage},
	} {
		if err := step.fn(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("reconcile", "controller", step.name, "err", err)
		}
	}
}
