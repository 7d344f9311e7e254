package sched

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	mycelv1alpha1 "github.com/mycelfabric/mycel/api/mycel/v1alpha1"
	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// Client is the object access the Scheduler needs.
type Client interface {
	List(ctx context.Context, list runtime.Object, namespace string, sel labels.Selector) error
	Update(ctx context.Context, obj objects.Object) error
	UpdateStatus(ctx context.Context, obj objects.Object) error
	Delete(ctx context.Context, obj objects.Object, gracePeriodSeconds *int64) error
	Record(ctx context.Context, obj objects.Object, component, eventType, reason, message string) error
	Notify(ctx context.Context, resource string, kick chan<- struct{})
	// Chain reads the chain of controllers that workload keys follow.
	Chain(ctx context.Context) (objects.Chain, error)
}

// Config configures a Scheduler.
type Config struct {
	// Client reads and writes objects; required.
	Client Client
	// Placer negotiates placements; required.
	Placer *Placer
	// Owns reports whether this node places the pods keyed by uid (their
	// workload key, objects.Chain.WorkloadKey); nil means all.
	Owns func(uid types.UID) bool
	// Members says who is alive, since when the dead are and how
	// confidently, and what the members' records advertise; required.
	Members Members
	// LostAfter is how long a node must have been dead before its pods
	// are re-placed when its death is not confirmed (only this node's side
	// saw it: a two-node fabric, a partition's minority), or, for a node
	// membership never met, how long its Node must not have been Ready;
	// zero means 5s. A confirmed death re-places at once: a suspected node
	// is alive, and one falsely declared dead by a lone member has this
	// long to refute it before it loses its pods.
	LostAfter time.Duration
	// MaxBackoff caps the wait between attempts for a pod that could not
	// be placed; zero means 10s. A membership change (Kick) retries at once.
	MaxBackoff time.Duration
	// Metrics, if set, records negotiations (see NewMetrics).
	Metrics *Metrics
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Metrics are the scheduler's Prometheus metrics.
type Metrics struct {
	negotiation *prometheus.HistogramVec
	messages    prometheus.Counter
}

// NewMetrics registers the scheduler's metrics with reg:
// mycel_sched_negotiation_seconds{result} (placed or unplaced) and
// mycel_sched_messages_total.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		negotiation: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mycel_sched_negotiation_seconds",
			Help:    "Time from the first tender to a confirmed award (placed) or to the last refusal (unplaced).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"result"}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mycel_sched_messages_total",
			Help: "Negotiation messages this node sent and received as an owner (tenders, bids, declines, awards, confirms).",
		}),
	}
	for _, c := range []prometheus.Collector{m.negotiation, m.messages} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) observe(start time.Time, out Outcome) {
	if m == nil {
		return
	}
	result := "placed"
	if out.Node == "" {
		result = "unplaced"
	}
	m.negotiation.WithLabelValues(result).Observe(time.Since(start).Seconds())
	m.messages.Add(float64(out.Messages))
}

const component = "mycel-scheduler"

// Scheduler places the pods this node owns and re-places the pods of nodes
// membership has declared dead.
type Scheduler struct {
	cfg  Config
	kick chan struct{}

	mu    sync.Mutex
	retry map[types.UID]retry
}

type retry struct {
	at    time.Time
	delay time.Duration
}

// New returns a Scheduler.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Client == nil || cfg.Placer == nil || cfg.Members == nil {
		return nil, errors.New("sched: Config.Client, Placer and Members are required")
	}
	if cfg.Owns == nil {
		cfg.Owns = func(types.UID) bool { return true }
	}
	if cfg.LostAfter == 0 {
		cfg.LostAfter = 5 * time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Scheduler{cfg: cfg, kick: make(chan struct{}, 1), retry: map[types.UID]retry{}}, nil
}

// Kick makes Run try every pending pod now (ownership or membership
// changed).
func (s *Scheduler) Kick() {
	s.mu.Lock()
	clear(s.retry)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run places pods as pods and nodes change until ctx is done.
func (s *Scheduler) Run(ctx context.Context) {
	changed := make(chan struct{}, 1)
	resources := []string{"pods", "nodes"}
	done := make(chan struct{}, len(resources))
	for _, res := range resources {
		go func() {
			s.cfg.Client.Notify(ctx, res, changed)
			done <- struct{}{}
		}()
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			for range resources {
				<-done
			}
			return
		case <-s.kick:
		case <-changed:
		case <-t.C:
		}
		next, err := s.ScheduleAll(ctx)
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("schedule pods", "err", err)
		}
		t.Reset(next)
	}
}

// ScheduleAll re-places pods lost with dead nodes and places every pending
// pod this node owns whose retry is due. It returns how long until the
// next retry is due.
func (s *Scheduler) ScheduleAll(ctx context.Context) (time.Duration, error) {
	var pods corev1.PodList
	if err := s.cfg.Client.List(ctx, &pods, "", nil); err != nil {
		return s.cfg.MaxBackoff, err
	}
	var nodes corev1.NodeList
	if err := s.cfg.Client.List(ctx, &nodes, "", nil); err != nil {
		return s.cfg.MaxBackoff, err
	}
	chain, err := s.cfg.Client.Chain(ctx)
	if err != nil {
		return s.cfg.MaxBackoff, err
	}
	next, err := s.evictLost(ctx, pods.Items, nodes.Items, chain)
	errs := []error{err}
	zone := map[string]string{}
	for i := range nodes.Items {
		zone[nodes.Items[i].Name] = nodes.Items[i].Labels[corev1.LabelTopologyZone]
	}
	spread := map[types.UID]Spread{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName != "" && active(p) {
			s.addSibling(spread, chain.WorkloadKey(p), p.Spec.NodeName, zone)
		}
	}
	now := s.cfg.Now()
	pending := map[types.UID]bool{}
	for i := range pods.Items {
		p := &pods.Items[i]
		key := chain.WorkloadKey(p)
		if p.Spec.NodeName != "" || p.DeletionTimestamp != nil || !s.cfg.Owns(key) {
			continue
		}
		pending[p.UID] = true
		if wait := s.due(p.UID, now); wait > 0 {
			next = min(next, wait)
			continue
		}
		node, err := s.place(ctx, p, nodes.Items, spread[key])
		if err != nil {
			errs = append(errs, err)
		}
		if node == "" {
			next = min(next, s.backOff(p.UID, now))
			continue
		}
		delete(pending, p.UID)
		s.addSibling(spread, key, node, zone)
	}
	s.mu.Lock()
	for uid := range s.retry {
		if !pending[uid] {
			delete(s.retry, uid) // placed, gone, or owned elsewhere now
		}
	}
	s.mu.Unlock()
	return next, errors.Join(errs...)
}

func active(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && !finished(p)
}

func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func (s *Scheduler) addSibling(spread map[types.UID]Spread, key types.UID, node string, zone map[string]string) {
	sp, ok := spread[key]
	if !ok {
		sp = Spread{Nodes: map[string]int{}, Zones: map[string]int{}}
		spread[key] = sp
	}
	sp.Nodes[node]++
	if z := zone[node]; z != "" {
		sp.Zones[z]++
	}
}

// place negotiates one pod and binds it, or records why it waits.
func (s *Scheduler) place(ctx context.Context, p *corev1.Pod, nodes []corev1.Node, spread Spread) (string, error) {
	cands, reasons, err := Filter(p, nodes, s.cfg.Members)
	if err != nil {
		return "", s.unschedulable(ctx, p, err.Error())
	}
	if len(cands) == 0 {
		return "", s.unschedulable(ctx, p, reasons.Message(len(nodes)))
	}
	start := time.Now()
	out := s.cfg.Placer.Place(ctx, p, cands, spread)
	s.cfg.Metrics.observe(start, out)
	if out.Node == "" {
		for why, c := range out.Reasons {
			reasons[why] += c
		}
		if rest := len(cands) - out.Asked; rest > 0 {
			reasons["node(s) not asked this round"] += rest
		}
		return "", s.unschedulable(ctx, p, reasons.Message(len(nodes)))
	}
	p.Spec.NodeName = out.Node
	if err := s.cfg.Client.Update(ctx, p); err != nil {
		// The winner's reservation lapses with its lease. A pod changed
		// meanwhile (bound by another owner during a handover, or deleted)
		// is looked at afresh in the next round.
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) || apierrors.IsInvalid(err) {
			s.cfg.Logger.Debug("pod changed while placing it", "pod", p.Namespace+"/"+p.Name, "err", err)
			return "", nil
		}
		return "", fmt.Errorf("bind %s/%s to %s: %w", p.Namespace, p.Name, out.Node, err)
	}
	s.cfg.Logger.Info("placed", "pod", p.Namespace+"/"+p.Name, "node", out.Node, "asked", out.Asked, "messages", out.Messages, "siblings", spread.Nodes)
	s.cfg.Client.Record(ctx, p, component, corev1.EventTypeNormal, "Scheduled",
		fmt.Sprintf("Successfully assigned %s/%s to %s", p.Namespace, p.Name, out.Node))
	return out.Node, nil
}

// evictLost deletes the pods this node owns that their nodes' NoExecute
// taints evict, as Kubernetes' taint-eviction controller does: a taint the
// pod does not tolerate evicts it at once, one it tolerates for
// tolerationSeconds evicts it that long after the taint was added. A node
// membership declared dead with confirmation (or left, or held dead without
// confirmation for LostAfter, or, for a node it never met, whose Node has
// not been Ready for LostAfter) counts as tainted
// node.kubernetes.io/unreachable:NoExecute; only controlled pods leave it,
// so their controllers create replacements on live nodes (a node that
// comes back removes their containers as orphans), and a pod tolerating
// that taint without a time (a DaemonSet's) stays. Pods already being
// deleted on a lost node are deleted at once (grace 0), as the node itself
// would once their grace period ended. It returns how long until the next
// eviction falls due.
func (s *Scheduler) evictLost(ctx context.Context, pods []corev1.Pod, nodes []corev1.Node, chain objects.Chain) (time.Duration, error) {
	now := s.cfg.Now()
	next := s.cfg.MaxBackoff
	byName := map[string]*corev1.Node{}
	lostAt := map[string]time.Time{}
	for i := range nodes {
		n := &nodes[i]
		byName[n.Name] = n
		if at, ok := s.lostAt(n, now); ok {
			lostAt[n.Name] = at
		}
	}
	var errs []error
	for i := range pods {
		p := &pods[i]
		n := byName[p.Spec.NodeName]
		if n == nil || !s.cfg.Owns(chain.WorkloadKey(p)) {
			continue
		}
		if lost, isLost := lostAt[n.Name]; isLost && p.DeletionTimestamp != nil && !finished(p) {
			// Being deleted, on a node that will not finish it: nothing
			// there runs its grace period, and a node that comes back
			// removes its containers as orphans.
			if wait := lost.Sub(now); wait > 0 {
				next = min(next, wait)
			} else if err := s.cfg.Client.Delete(ctx, p, new(int64(0))); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("finish deleting %s/%s on lost node %s: %w", p.Namespace, p.Name, n.Name, err))
			}
			continue
		}
		if !active(p) {
			continue
		}
		at, why, ok := time.Time{}, "", false
		if lost, isLost := lostAt[n.Name]; isLost && metav1.GetControllerOf(p) != nil {
			unreachable := corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
			if d, evicts := tolerated(p, &unreachable); evicts {
				at, ok = lost.Add(d), true
				why = fmt.Sprintf("Node %s was declared dead; deleting the pod so its controller replaces it on a live node", n.Name)
			}
		}
		for j := range n.Spec.Taints {
			t := &n.Spec.Taints[j]
			if t.Effect != corev1.TaintEffectNoExecute {
				continue
			}
			if d, evicts := tolerated(p, t); evicts {
				added := now
				if t.TimeAdded != nil {
					added = t.TimeAdded.Time
				}
				if !ok || added.Add(d).Before(at) {
					at, ok = added.Add(d), true
					why = fmt.Sprintf("Marking for deletion Pod %s/%s: node %s has taint {%s: %s} with effect NoExecute", p.Namespace, p.Name, n.Name, t.Key, t.Value)
				}
			}
		}
		if !ok {
			continue
		}
		if wait := at.Sub(now); wait > 0 {
			next = min(next, wait)
			continue
		}
		var grace *int64
		reason := "TaintManagerEviction"
		if _, lost := lostAt[n.Name]; lost {
			grace, reason = new(int64(0)), "NodeLost" // nothing there runs a grace period
		}
		s.cfg.Client.Record(ctx, p, component, corev1.EventTypeWarning, reason, why)
		if err := s.cfg.Client.Delete(ctx, p, grace); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("evict %s/%s from node %s: %w", p.Namespace, p.Name, n.Name, err))
		}
	}
	return next, errors.Join(errs...)
}

// tolerated returns how long p tolerates taint t, and whether the taint
// ever evicts it (false: tolerated for good).
func tolerated(p *corev1.Pod, t *corev1.Taint) (time.Duration, bool) {
	var best *corev1.Toleration
	for i := range p.Spec.Tolerations {
		tol := &p.Spec.Tolerations[i]
		if !tol.ToleratesTaint(klog.Background(), t, false) {
			continue
		}
		if tol.TolerationSeconds == nil {
			return 0, false
		}
		if best == nil || *tol.TolerationSeconds > *best.TolerationSeconds {
			best = tol
		}
	}
	if best == nil {
		return 0, true
	}
	return time.Duration(max(*best.TolerationSeconds, 0)) * time.Second, true
}

// lostAt reports whether n is lost, and from when it counts as tainted
// unreachable: at once once membership declared it dead with confirmation
// (or it left); LostAfter after an unconfirmed death; and, for a node
// membership never met, LostAfter after its Node stopped being Ready.
func (s *Scheduler) lostAt(n *corev1.Node, now time.Time) (time.Time, bool) {
	peer := n.Labels[mycelv1alpha1.LabelPeerID]
	if peer == "" || s.cfg.Members.Live(peer) {
		return time.Time{}, false
	}
	if at, confirmed, ok := s.cfg.Members.Death(peer); ok {
		if confirmed {
			return at, true
		}
		return at.Add(s.cfg.LostAfter), true
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
			return c.LastTransitionTime.Add(s.cfg.LostAfter), true
		}
	}
	// A Ready node counts from now: whoever owns the Node marks it
	// Unknown soon after its death.
	return now.Add(s.cfg.LostAfter), true
}

// due returns how long until the pod may be tried again (0: now).
func (s *Scheduler) due(uid types.UID, now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.retry[uid]
	if !ok || !now.Before(r.at) {
		return 0
	}
	return r.at.Sub(now)
}

// backOff doubles the pod's wait (1s, 2s, 4s ... MaxBackoff) and returns it.
func (s *Scheduler) backOff(uid types.UID, now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.retry[uid]
	r.delay = min(max(2*r.delay, time.Second), s.cfg.MaxBackoff)
	r.at = now.Add(r.delay)
	s.retry[uid] = r
	return r.delay
}

// unschedulable records why a pod waits, once per distinct reason, so a
// pod retried on every change does not flood events.
func (s *Scheduler) unschedulable(ctx context.Context, p *corev1.Pod, why string) error {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message == why {
			return nil
		}
	}
	cond := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: why, LastTransitionTime: metav1.NewTime(s.cfg.Now())}
	kept := p.Status.Conditions[:0]
	for _, c := range p.Status.Conditions {
		if c.Type != corev1.PodScheduled {
			kept = append(kept, c)
		}
	}
	p.Status.Conditions = append(kept, cond)
	p.Status.Phase = corev1.PodPending
	if err := s.cfg.Client.UpdateStatus(ctx, p); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil // changed meanwhile; the next round sees it afresh
		}
		return fmt.Errorf("mark %s/%s unschedulable: %w", p.Namespace, p.Name, err)
	}
	return s.cfg.Client.Record(ctx, p, component, corev1.EventTypeWarning, "FailedScheduling", why)
}
