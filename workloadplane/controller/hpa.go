package controller

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// PodMetrics is the pods' resource usage the autoscaler reads
// (metrics.k8s.io's, gathered from the nodes running them).
type PodMetrics interface {
	PodMetrics(ctx context.Context, namespace string) ([]metricsv1beta1.PodMetrics, error)
}

const (
	hpaComponent = "horizontal-pod-autoscaler"
	// hpaSyncPeriod is how often an autoscaler is evaluated
	// (kube-controller-manager's --horizontal-pod-autoscaler-sync-period).
	hpaSyncPeriod = 15 * time.Second
	// hpaTolerance is the ratio to the target within which nothing is
	// scaled (--horizontal-pod-autoscaler-tolerance).
	hpaTolerance = 0.1
)

// hpaState is what the owner of an autoscaler remembers between
// evaluations, in memory as kube-controller-manager does: a new owner
// starts afresh, so a scale-down stabilization window restarts with it.
type hpaState struct {
	next            time.Time
	recommendations []timedReplicas // unstabilized recommendations
	scaleUps        []timedReplicas // replicas added, for the scaling policies
	scaleDowns      []timedReplicas // replicas removed
}

type timedReplicas struct {
	n  int32
	at time.Time
}

func (m *Manager) reconcileAutoscalers(ctx context.Context) error {
	var hpas autoscalingv2.HorizontalPodAutoscalerList
	if err := m.c.List(ctx, &hpas, "", nil); err != nil {
		return err
	}
	now := m.cfg.Now()
	seen := map[types.UID]bool{}
	for i := range hpas.Items {
		h := &hpas.Items[i]
		if h.DeletionTimestamp != nil || !m.cfg.Owns(m.chain.WorkloadKey(h)) {
			continue
		}
		seen[h.UID] = true
		st := m.hpas[h.UID]
		if st == nil {
			st = &hpaState{}
			m.hpas[h.UID] = st
		}
		if now.Before(st.next) && h.Status.ObservedGeneration != nil && *h.Status.ObservedGeneration == h.Generation {
			m.wakeAt(st.next)
			continue
		}
		st.next = now.Add(hpaSyncPeriod)
		m.wakeAt(st.next)
		if err := m.syncAutoscaler(ctx, h, st); err != nil {
			m.log.Warn("sync horizontalpodautoscaler", "hpa", h.Namespace+"/"+h.Name, "err", err)
		}
	}
	for uid := range m.hpas {
		if !seen[uid] {
			delete(m.hpas, uid)
		}
	}
	return nil
}

// syncAutoscaler evaluates one autoscaler as Kubernetes' does: read the
// target's scale, propose a replica count per metric, take the largest,
// stabilize it and limit its rate by the behavior, scale, and report.
func (m *Manager) syncAutoscaler(ctx context.Context, h *autoscalingv2.HorizontalPodAutoscaler, st *hpaState) error {
	now := m.cfg.Now()
	status := h.Status.DeepCopy()
	status.ObservedGeneration = ptr(h.Generation)
	cond := func(t autoscalingv2.HorizontalPodAutoscalerConditionType, s corev1.ConditionStatus, reason, msg string) {
		setHPACondition(status, autoscalingv2.HorizontalPodAutoscalerCondition{Type: t, Status: s, Reason: reason, Message: msg}, now)
	}
	defer func() {
		if !equality.Semantic.DeepEqual(*status, h.Status) {
			h.Status = *status
			if err := m.c.UpdateStatus(ctx, h); err != nil {
				m.log.Warn("update horizontalpodautoscaler status", "hpa", h.Namespace+"/"+h.Name, "err", err)
			}
		}
	}()

	res, target, scale, err := m.scaleTarget(ctx, h)
	if err != nil {
		cond(autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedGetScale", "the HPA controller was unable to get the target's current scale: "+err.Error())
		m.c.Record(ctx, h, hpaComponent, corev1.EventTypeWarning, "FailedGetScale", err.Error())
		return nil
	}
	current := scale.Spec.Replicas
	status.CurrentReplicas = scale.Status.Replicas
	minReplicas, maxReplicas := ptrOr(h.Spec.MinReplicas, 1), h.Spec.MaxReplicas
	var desired int32
	switch {
	case current == 0 && minReplicas != 0:
		cond(autoscalingv2.ScalingActive, corev1.ConditionFalse, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero")
		status.DesiredReplicas = 0
		return nil
	case current > maxReplicas:
		desired = maxReplicas
		cond(autoscalingv2.ScalingLimited, corev1.ConditionTrue, "TooManyReplicas", "the desired replica count is more than the maximum replica count")
	case current < minReplicas:
		desired = minReplicas
		cond(autoscalingv2.ScalingLimited, corev1.ConditionTrue, "TooFewReplicas", "the desired replica count is less than the minimum replica count")
	default:
		sel, err := labels.Parse(scale.Status.Selector)
		if err != nil || scale.Status.Selector == "" {
			cond(autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector", "the HPA target's scale is missing a selector")
			return nil
		}
		proposal, metricName, metrics, err := m.proposeReplicas(ctx, h, current, sel)
		status.CurrentMetrics = metrics
		if err != nil && proposal == 0 {
			cond(autoscalingv2.ScalingActive, corev1.ConditionFalse, failedMetricReason(h), "the HPA was unable to compute the replica count: "+err.Error())
			m.c.Record(ctx, h, hpaComponent, corev1.EventTypeWarning, failedMetricReason(h), err.Error())
			return nil
		}
		if err != nil && proposal < current {
			proposal = current // an invalid metric never lets the others scale down
		}
		cond(autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound", "the HPA was able to successfully calculate a replica count from "+metricName)
		desired = m.normalizeReplicas(h, st, current, proposal, minReplicas, maxReplicas, cond)
	}
	status.DesiredReplicas = desired
	if desired == current {
		return nil
	}
	if err := res.SetReplicas(target, desired); err != nil {
		return err
	}
	if err := m.c.Update(ctx, target); err != nil {
		cond(autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedUpdateScale", "the HPA controller was unable to update the target scale: "+err.Error())
		m.c.Record(ctx, h, hpaComponent, corev1.EventTypeWarning, "FailedRescale", err.Error())
		return nil
	}
	cond(autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededRescale", fmt.Sprintf("the HPA controller was able to update the target scale to %d", desired))
	m.c.Record(ctx, h, hpaComponent, corev1.EventTypeNormal, "SuccessfulRescale", fmt.Sprintf("New size: %d; reason: %s", desired, rescaleReason(current, desired)))
	status.LastScaleTime = &metav1.Time{Time: now}
	// Scale events older than the longest policy period allowed count
	// for no policy.
	stale := func(e timedReplicas) bool { return now.Sub(e.at) > 1800*time.Second }
	st.scaleUps, st.scaleDowns = slices.DeleteFunc(st.scaleUps, stale), slices.DeleteFunc(st.scaleDowns, stale)
	if desired > current {
		st.scaleUps = append(st.scaleUps, timedReplicas{n: desired - current, at: now})
	} else {
		st.scaleDowns = append(st.scaleDowns, timedReplicas{n: current - desired, at: now})
	}
	return nil
}

func rescaleReason(current, desired int32) string {
	if desired > current {
		return "metrics above target"
	}
	return "All metrics below target"
}

// scaleTarget reads the autoscaler's target and its Scale.
func (m *Manager) scaleTarget(ctx context.Context, h *autoscalingv2.HorizontalPodAutoscaler) (*objects.Resource, objects.Object, *autoscalingv1.Scale, error) {
	ref := h.Spec.ScaleTargetRef
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, nil, nil, err
	}
	i := slices.IndexFunc(m.c.Resources(), func(r *objects.Resource) bool { return r.GVK() == gv.WithKind(ref.Kind) })
	if i < 0 {
		return nil, nil, nil, fmt.Errorf("no matches for kind %q in group %q", ref.Kind, gv.Group)
	}
	res := m.c.Resources()[i]
	if !res.HasSub("scale") {
		return nil, nil, nil, fmt.Errorf("%s has no scale subresource", res.GroupResource())
	}
	obj := res.New()
	obj.SetNamespace(h.Namespace)
	obj.SetName(ref.Name)
	if err := m.c.Get(ctx, obj); err != nil {
		return nil, nil, nil, err
	}
	sc, err := res.Scale(obj)
	if err != nil {
		return nil, nil, nil, err
	}
	return res, obj, sc, nil
}

func failedMetricReason(h *autoscalingv2.HorizontalPodAutoscaler) string {
	for _, m := range h.Spec.Metrics {
		if m.Type != autoscalingv2.ResourceMetricSourceType && m.Type != autoscalingv2.ContainerResourceMetricSourceType {
			return "FailedGet" + string(m.Type) + "Metric"
		}
	}
	return "FailedGetResourceMetric"
}

// proposeReplicas is the largest replica count the metrics ask for, the
// name of the metric that asks for it, and each metric's current value.
// With an error for some metrics, the proposal is that of the others (0
// if none could be computed).
func (m *Manager) proposeReplicas(ctx context.Context, h *autoscalingv2.HorizontalPodAutoscaler, current int32, sel labels.Selector) (int32, string, []autoscalingv2.MetricStatus, error) {
	var pods corev1.PodList
	if err := m.c.List(ctx, &pods, h.Namespace, sel); err != nil {
		return 0, "", nil, err
	}
	var usage map[string]metricsv1beta1.PodMetrics
	var proposal int32
	var name string
	var statuses []autoscalingv2.MetricStatus
	var errs []error
	for _, spec := range h.Spec.Metrics {
		var resName corev1.ResourceName
		var container string
		var target autoscalingv2.MetricTarget
		switch {
		case spec.Resource != nil:
			resName, target = spec.Resource.Name, spec.Resource.Target
		case spec.ContainerResource != nil:
			resName, target, container = spec.ContainerResource.Name, spec.ContainerResource.Target, spec.ContainerResource.Container
		default:
			errs = append(errs, fmt.Errorf("%s metrics are not supported: Mycel serves only resource metrics (metrics.k8s.io), not the custom or external metrics APIs", spec.Type))
			continue
		}
		if usage == nil {
			var err error
			if usage, err = m.podUsage(ctx, h.Namespace); err != nil {
				return 0, "", nil, err
			}
		}
		n, st, err := resourceReplicas(current, pods.Items, usage, resName, container, target)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		statuses = append(statuses, st)
		if n > proposal || name == "" {
			proposal, name = n, describeMetric(resName, container, target)
		}
	}
	return proposal, name, statuses, errors.Join(errs...)
}

func (m *Manager) podUsage(ctx context.Context, namespace string) (map[string]metricsv1beta1.PodMetrics, error) {
	if m.cfg.Metrics == nil {
		return nil, errors.New("no resource metrics are available on this node")
	}
	list, err := m.cfg.Metrics.PodMetrics(ctx, namespace)
	if err != nil {
		return nil, fmt.Errorf("unable to get metrics for resource usage: %w", err)
	}
	out := map[string]metricsv1beta1.PodMetrics{}
	for _, pm := range list {
		out[pm.Name] = pm
	}
	return out, nil
}

func describeMetric(res corev1.ResourceName, container string, t autoscalingv2.MetricTarget) string {
	what := string(res) + " resource"
	if container != "" {
		what = string(res) + " container resource"
	}
	if t.Type == autoscalingv2.UtilizationMetricType {
		return what + " utilization (percentage of request)"
	}
	return what
}

// resourceReplicas is Kubernetes' replica calculation for a resource
// metric: the ratio of the pods' average usage to the target, applied to
// the pods that report it, unless within the tolerance. Pods without
// metrics count as using nothing when scaling up and their full target
// when scaling down; for CPU, pods not yet Ready count as using nothing
// when scaling up; pods being deleted or failed are ignored. A proposal
// those assumptions would turn around keeps the current count.
func resourceReplicas(current int32, pods []corev1.Pod, usage map[string]metricsv1beta1.PodMetrics, res corev1.ResourceName, container string, target autoscalingv2.MetricTarget) (int32, autoscalingv2.MetricStatus, error) {
	if len(pods) == 0 {
		return 0, autoscalingv2.MetricStatus{}, errors.New("no pods match the target's selector")
	}
	type sample struct{ used, requested int64 }
	ready := map[string]sample{}
	var missing, unready []string
	for i := range pods {
		p := &pods[i]
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
			continue
		}
		pm, ok := usage[p.Name]
		if !ok {
			if p.Status.Phase == corev1.PodPending {
				unready = append(unready, p.Name)
			} else {
				missing = append(missing, p.Name)
			}
			continue
		}
		if res == corev1.ResourceCPU && !podReady(p) {
			unready = append(unready, p.Name)
			continue
		}
		var s sample
		for _, c := range pm.Containers {
			if container == "" || c.Name == container {
				q := c.Usage[res]
				s.used += q.MilliValue()
			}
		}
		for _, c := range p.Spec.Containers {
			if container != "" && c.Name != container {
				continue
			}
			q, ok := c.Resources.Requests[res]
			if !ok && target.Type == autoscalingv2.UtilizationMetricType {
				return 0, autoscalingv2.MetricStatus{}, fmt.Errorf("missing request for %s in container %s of Pod %s", res, c.Name, p.Name)
			}
			s.requested += q.MilliValue()
		}
		ready[p.Name] = s
	}
	if len(ready) == 0 {
		return 0, autoscalingv2.MetricStatus{}, fmt.Errorf("did not receive metrics for targeted pods (pods might be unready)")
	}
	var used, requested int64
	for _, s := range ready {
		used, requested = used+s.used, requested+s.requested
	}
	// ratio of usage to target, per pod with metrics
	ratioOf := func(used, requested int64, n int) float64 {
		if target.Type == autoscalingv2.UtilizationMetricType {
			return float64(used) / float64(requested) * 100 / float64(*target.AverageUtilization)
		}
		return float64(used) / float64(n) / float64(target.AverageValue.MilliValue())
	}
	ratio := ratioOf(used, requested, len(ready))
	value := autoscalingv2.MetricValueStatus{AverageValue: resource.NewMilliQuantity(used/int64(len(ready)), resource.DecimalSI)}
	if res == corev1.ResourceMemory {
		value.AverageValue = resource.NewQuantity(used/1000/int64(len(ready)), resource.BinarySI)
	}
	if target.Type == autoscalingv2.UtilizationMetricType {
		value.AverageUtilization = ptr(int32(used * 100 / max(requested, 1)))
	}
	status := autoscalingv2.MetricStatus{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{Name: res, Current: value}}
	if container != "" {
		status = autoscalingv2.MetricStatus{Type: autoscalingv2.ContainerResourceMetricSourceType,
			ContainerResource: &autoscalingv2.ContainerResourceMetricStatus{Name: res, Container: container, Current: value}}
	}
	rebalance := len(missing) > 0 || (ratio > 1 && len(unready) > 0)
	if !rebalance {
		if math.Abs(1-ratio) <= hpaTolerance {
			return current, status, nil
		}
		return int32(math.Ceil(ratio * float64(len(ready)))), status, nil
	}
	// Assume the worst for the direction the ready pods point to.
	perPodRequest := requested / int64(len(ready))
	n := len(ready)
	for range missing {
		if ratio < 1 {
			if target.Type == autoscalingv2.UtilizationMetricType {
				used += perPodRequest * int64(*target.AverageUtilization) / 100
			} else {
				used += target.AverageValue.MilliValue()
			}
		}
		requested += perPodRequest
		n++
	}
	if ratio > 1 {
		requested += perPodRequest * int64(len(unready))
		n += len(unready)
	}
	newRatio := ratioOf(used, requested, n)
	if math.Abs(1-newRatio) <= hpaTolerance || (ratio < 1) != (newRatio < 1) {
		return current, status, nil
	}
	proposal := int32(math.Ceil(newRatio * float64(n)))
	if (newRatio < 1 && proposal > current) || (newRatio > 1 && proposal < current) {
		return current, status, nil
	}
	return proposal, status, nil
}

// normalizeReplicas stabilizes a proposal over the behavior's windows and
// limits it by its policies and by min and max, as
// normalizeDesiredReplicasWithBehaviors does; an autoscaler without a
// behavior has Kubernetes' default one.
func (m *Manager) normalizeReplicas(h *autoscalingv2.HorizontalPodAutoscaler, st *hpaState, current, proposal, minReplicas, maxReplicas int32,
	cond func(autoscalingv2.HorizontalPodAutoscalerConditionType, corev1.ConditionStatus, string, string)) int32 {
	up, down := objects.ScaleUpRules(), objects.ScaleDownRules()
	if b := h.Spec.Behavior; b != nil {
		up, down = b.ScaleUp, b.ScaleDown
	}
	now := m.cfg.Now()
	if st.recommendations == nil {
		st.recommendations = []timedReplicas{{n: current, at: now}}
	}
	upCutoff := now.Add(-time.Duration(ptrOr(up.StabilizationWindowSeconds, 0)) * time.Second)
	downCutoff := now.Add(-time.Duration(ptrOr(down.StabilizationWindowSeconds, 300)) * time.Second)
	upRec, downRec := proposal, proposal
	kept := st.recommendations[:0]
	for _, r := range st.recommendations {
		if r.at.After(upCutoff) {
			upRec = min(upRec, r.n)
		}
		if r.at.After(downCutoff) {
			downRec = max(downRec, r.n)
		}
		if r.at.After(upCutoff) || r.at.After(downCutoff) {
			kept = append(kept, r)
		}
	}
	st.recommendations = append(kept, timedReplicas{n: proposal, at: now})
	stabilized := min(max(current, upRec), downRec)
	switch {
	case stabilized == proposal:
		cond(autoscalingv2.AbleToScale, corev1.ConditionTrue, "ReadyForNewScale", "recommended size matches current size")
	case stabilized < proposal:
		cond(autoscalingv2.AbleToScale, corev1.ConditionTrue, "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation")
	default:
		cond(autoscalingv2.AbleToScale, corev1.ConditionTrue, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation")
	}

	desired, reason, msg := stabilized, "DesiredWithinRange", "the desired count is within the acceptable range"
	switch {
	case stabilized > current:
		limit := max(scaleLimit(current, st, up, now, true), current)
		allowed := maxReplicas
		reason, msg = "TooManyReplicas", "the desired replica count is more than the maximum replica count"
		if limit < allowed {
			allowed, reason, msg = limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
		}
		if desired > allowed {
			desired = allowed
		} else {
			reason, msg = "DesiredWithinRange", "the desired count is within the acceptable range"
		}
	case stabilized < current:
		limit := min(scaleLimit(current, st, down, now, false), current)
		allowed := minReplicas
		reason, msg = "TooFewReplicas", "the desired replica count is less than the minimum replica count"
		if limit > allowed {
			allowed, reason, msg = limit, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
		}
		if desired < allowed {
			desired = allowed
		} else {
			reason, msg = "DesiredWithinRange", "the desired count is within the acceptable range"
		}
	}
	limited := corev1.ConditionFalse
	if desired != stabilized {
		limited = corev1.ConditionTrue
	}
	cond(autoscalingv2.ScalingLimited, limited, reason, msg)
	return desired
}

// scaleLimit is how far the rules let the replica count go from current
// now, given the scale events of their periods: the largest change of the
// policies (Max), the smallest (Min), or none (Disabled).
func scaleLimit(current int32, st *hpaState, rules *autoscalingv2.HPAScalingRules, now time.Time, up bool) int32 {
	sel := ptrOr(rules.SelectPolicy, autoscalingv2.MaxChangePolicySelect)
	if sel == autoscalingv2.DisabledPolicySelect {
		return current
	}
	// For scaling up the largest change is the highest count; for scaling
	// down, the lowest.
	pick := func(a, b int32) int32 { return max(a, b) }
	result := int32(math.MinInt32)
	if up == (sel == autoscalingv2.MinChangePolicySelect) {
		pick, result = func(a, b int32) int32 { return min(a, b) }, math.MaxInt32
	}
	for _, p := range rules.Policies {
		cutoff := now.Add(-time.Duration(p.PeriodSeconds) * time.Second)
		start := current - changedSince(st.scaleUps, cutoff) + changedSince(st.scaleDowns, cutoff)
		var proposed int32
		switch {
		case p.Type == autoscalingv2.PodsScalingPolicy && up:
			proposed = start + p.Value
		case p.Type == autoscalingv2.PodsScalingPolicy:
			proposed = start - p.Value
		case up:
			proposed = int32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		default:
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		}
		result = pick(result, proposed)
	}
	return result
}

func changedSince(evs []timedReplicas, cutoff time.Time) int32 {
	var n int32
	for _, e := range evs {
		if e.at.After(cutoff) {
			n += e.n
		}
	}
	return n
}

// setHPACondition sets c in status, keeping the transition time of a
// condition whose status did not change.
func setHPACondition(status *autoscalingv2.HorizontalPodAutoscalerStatus, c autoscalingv2.HorizontalPodAutoscalerCondition, now time.Time) {
	c.LastTransitionTime = metav1.Time{Time: now.Truncate(time.Second)}
	for i := range status.Conditions {
		if status.Conditions[i].Type == c.Type {
			if status.Conditions[i].Status == c.Status {
				c.LastTransitionTime = status.Conditions[i].LastTransitionTime
			}
			status.Conditions[i] = c
			return
		}
	}
	status.Conditions = append(status.Conditions, c)
}
