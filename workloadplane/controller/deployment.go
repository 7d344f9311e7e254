package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
)

const (
	deployComponent = "deployment-controller"
	// RevisionAnnotation numbers a Deployment's ReplicaSets, as in Kubernetes.
	RevisionAnnotation = "deployment.kubernetes.io/revision"
	// HashLabel tells apart the ReplicaSets of one Deployment.
	HashLabel = appsv1.DefaultDeploymentUniqueLabelKey
)

// templateHash names a pod template: the same template gives the same
// ReplicaSet, so re-applying a manifest changes nothing.
func templateHash(t *corev1.PodTemplateSpec) string {
	data, _ := json.Marshal(t)
	h := fnv.New32a()
	h.Write(data)
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

func revision(obj metav1.Object) int {
	n, _ := strconv.Atoi(obj.GetAnnotations()[RevisionAnnotation])
	return n
}

func (m *Manager) reconcileDeployments(ctx context.Context) error {
	var rss appsv1.ReplicaSetList
	if err := m.c.List(ctx, &rss, "", nil); err != nil {
		return err
	}
	var ds appsv1.DeploymentList
	if err := m.c.List(ctx, &ds, "", nil); err != nil {
		return err
	}
	owned := map[types.UID][]*appsv1.ReplicaSet{}
	for i := range rss.Items {
		rs := &rss.Items[i]
		if uid := controllerOf(rs); uid != "" && rs.DeletionTimestamp == nil {
			owned[uid] = append(owned[uid], rs)
		}
	}
	for i := range ds.Items {
		d := &ds.Items[i]
		if d.DeletionTimestamp != nil || !m.cfg.Owns(m.chain.WorkloadKey(d)) {
			continue
		}
		if err := m.syncDeployment(ctx, d, owned[d.UID]); err != nil {
			m.log.Warn("sync deployment", "deployment", d.Namespace+"/"+d.Name, "err", err)
		}
	}
	return nil
}

// rollingParams resolves maxSurge and maxUnavailable for desired replicas,
// rounding surge up and unavailability down, as Kubernetes does.
func rollingParams(d *appsv1.Deployment, desired int) (surge, unavailable int) {
	ru := d.Spec.Strategy.RollingUpdate
	if ru == nil {
		return 1, 0
	}
	surge, _ = intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, desired, true)
	unavailable, _ = intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, desired, false)
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, min(unavailable, desired)
}

func (m *Manager) syncDeployment(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet) error {
	hash := templateHash(&d.Spec.Template)
	var newRS *appsv1.ReplicaSet
	var old []*appsv1.ReplicaSet
	maxRev := 0
	for _, rs := range rss {
		if rs.Labels[HashLabel] == hash {
			newRS = rs
		} else {
			old = append(old, rs)
			maxRev = max(maxRev, revision(rs))
		}
	}
	sort.Slice(old, func(i, j int) bool { return revision(old[i]) < revision(old[j]) })
	desired := int(*d.Spec.Replicas)

	if newRS == nil && !d.Spec.Paused {
		rs, err := m.createReplicaSet(ctx, d, hash, maxRev+1)
		if err != nil {
			return err
		}
		newRS = rs
	} else if newRS != nil && revision(newRS) <= maxRev {
		// Rolled back to an older template: it becomes the newest revision.
		newRS.Annotations[RevisionAnnotation] = strconv.Itoa(maxRev + 1)
		if err := m.c.Update(ctx, newRS); err != nil {
			return err
		}
	}

	if !d.Spec.Paused && newRS != nil {
		var err error
		if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
			err = m.recreate(ctx, d, newRS, old, desired)
		} else {
			err = m.rollingUpdate(ctx, d, newRS, old, desired)
		}
		if err != nil {
			return err
		}
		if err := m.cleanupHistory(ctx, d, old); err != nil {
			return err
		}
	}
	return m.deploymentStatus(ctx, d, newRS, old, desired)
}

func (m *Manager) createReplicaSet(ctx context.Context, d *appsv1.Deployment, hash string, rev int) (*appsv1.ReplicaSet, error) {
	t := d.Spec.Template.DeepCopy()
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	t.Labels[HashLabel] = hash
	sel := d.Spec.Selector.DeepCopy()
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[HashLabel] = hash
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			Labels:          t.Labels,
			Annotations:     map[string]string{RevisionAnnotation: strconv.Itoa(rev), "deployment.kubernetes.io/desired-replicas": strconv.Itoa(int(*d.Spec.Replicas))},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr(int32(0)), Selector: sel, Template: *t, MinReadySeconds: d.Spec.MinReadySeconds},
	}
	if err := m.c.Create(ctx, rs); err != nil {
		return nil, err
	}
	if d.Annotations[RevisionAnnotation] != strconv.Itoa(rev) {
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[RevisionAnnotation] = strconv.Itoa(rev)
		if err := m.c.Update(ctx, d); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

// scale sets a ReplicaSet's replicas and records why.
func (m *Manager) scale(ctx context.Context, d *appsv1.Deployment, rs *appsv1.ReplicaSet, n int) error {
	cur := int(*rs.Spec.Replicas)
	if cur == n {
		return nil
	}
	rs.Spec.Replicas = ptr(int32(n))
	if err := m.c.Update(ctx, rs); err != nil {
		return err
	}
	dir := "up"
	if n < cur {
		dir = "down"
	}
	m.c.Record(ctx, d, deployComponent, corev1.EventTypeNormal, "ScalingReplicaSet",
		fmt.Sprintf("Scaled %s replica set %s from %d to %d", dir, rs.Name, cur, n))
	return nil
}

func (m *Manager) recreate(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet, desired int) error {
	running := 0
	for _, rs := range old {
		if err := m.scale(ctx, d, rs, 0); err != nil {
			return err
		}
		running += int(rs.Status.Replicas)
	}
	if running > 0 {
		return nil // wait for the old pods to be gone
	}
	return m.scale(ctx, d, newRS, desired)
}

func (m *Manager) rollingUpdate(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet, desired int) error {
	surge, unavailable := rollingParams(d, desired)
	total := int(*newRS.Spec.Replicas)
	for _, rs := range old {
		total += int(*rs.Spec.Replicas)
	}
	// Scale the new ReplicaSet up within the surge, or down to desired.
	newCount := int(*newRS.Spec.Replicas)
	switch {
	case newCount > desired:
		newCount = desired
	case newCount < desired:
		if allowed := desired + surge - total; allowed > 0 {
			newCount = min(desired, newCount+allowed)
		}
	}
	if err := m.scale(ctx, d, newRS, newCount); err != nil {
		return err
	}
	total = newCount
	for _, rs := range old {
		total += int(*rs.Spec.Replicas)
	}

	// Scale old ReplicaSets down, never below the minimum available:
	// unhealthy replicas go first, then healthy ones, oldest revision first.
	minAvailable := desired - unavailable
	newUnavailable := newCount - int(newRS.Status.AvailableReplicas)
	budget := total - minAvailable - newUnavailable
	for _, rs := range old {
		if budget <= 0 {
			break
		}
		unhealthy := int(*rs.Spec.Replicas) - int(rs.Status.AvailableReplicas)
		if n := min(max(unhealthy, 0), budget); n > 0 {
			if err := m.scale(ctx, d, rs, int(*rs.Spec.Replicas)-n); err != nil {
				return err
			}
			budget -= n
		}
	}
	available := int(newRS.Status.AvailableReplicas)
	for _, rs := range old {
		available += int(min(rs.Status.AvailableReplicas, *rs.Spec.Replicas))
	}
	down := available - minAvailable
	for _, rs := range old {
		if down <= 0 {
			break
		}
		n := min(int(*rs.Spec.Replicas), down)
		if n > 0 {
			if err := m.scale(ctx, d, rs, int(*rs.Spec.Replicas)-n); err != nil {
				return err
			}
			down -= n
		}
	}
	return nil
}

// cleanupHistory deletes the oldest empty ReplicaSets beyond revisionHistoryLimit.
func (m *Manager) cleanupHistory(ctx context.Context, d *appsv1.Deployment, old []*appsv1.ReplicaSet) error {
	limit := 10
	if d.Spec.RevisionHistoryLimit != nil {
		limit = int(*d.Spec.RevisionHistoryLimit)
	}
	var empty []*appsv1.ReplicaSet
	for _, rs := range old {
		if *rs.Spec.Replicas == 0 && rs.Status.Replicas == 0 {
			empty = append(empty, rs)
		}
	}
	for i := 0; i < len(empty)-limit; i++ {
		if err := m.c.Delete(ctx, empty[i], nil); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) deploymentStatus(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet, desired int) error {
	st := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, CollisionCount: d.Status.CollisionCount}
	all := old
	if newRS != nil {
		all = append([]*appsv1.ReplicaSet{newRS}, old...)
		st.UpdatedReplicas = newRS.Status.Replicas
	}
	for _, rs := range all {
		st.Replicas += rs.Status.Replicas
		st.ReadyReplicas += rs.Status.ReadyReplicas
		st.AvailableReplicas += rs.Status.AvailableReplicas
	}
	st.UnavailableReplicas = max(0, int32(desired)-st.AvailableReplicas)
	_, unavailable := rollingParams(d, desired)
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		unavailable = 0
	}
	now := metav1.NewTime(m.cfg.Now())
	avail := appsv1.DeploymentCondition{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", Message: "Deployment has minimum availability."}
	if int(st.AvailableReplicas) < desired-unavailable {
		avail.Status, avail.Reason, avail.Message = corev1.ConditionFalse, "MinimumReplicasUnavailable", "Deployment does not have minimum availability."
	}
	prog := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "ReplicaSetUpdated"}
	switch {
	case d.Spec.Paused:
		prog.Status, prog.Reason, prog.Message = corev1.ConditionUnknown, "DeploymentPaused", "Deployment is paused"
	case newRS == nil:
	case int(st.UpdatedReplicas) == desired && int(st.Replicas) == desired && int(st.AvailableReplicas) == desired:
		prog.Reason, prog.Message = "NewReplicaSetAvailable", fmt.Sprintf("ReplicaSet %q has successfully progressed.", newRS.Name)
	default:
		prog.Message = fmt.Sprintf("ReplicaSet %q is progressing.", newRS.Name)
	}
	st.Conditions = []appsv1.DeploymentCondition{keepTimes(d.Status.Conditions, avail, now), keepTimes(d.Status.Conditions, prog, now)}
	if equality.Semantic.DeepEqual(st, d.Status) {
		return nil
	}
	d.Status = st
	return m.c.UpdateStatus(ctx, d)
}

// keepTimes sets a condition's timestamps, keeping lastTransitionTime
// while its status is unchanged and lastUpdateTime while nothing changed.
func keepTimes(old []appsv1.DeploymentCondition, c appsv1.DeploymentCondition, now metav1.Time) appsv1.DeploymentCondition {
	c.LastUpdateTime, c.LastTransitionTime = now, now
	for _, o := range old {
		if o.Type != c.Type {
			continue
		}
		if o.Status == c.Status {
			c.LastTransitionTime = o.LastTransitionTime
			if o.Reason == c.Reason && o.Message == c.Message {
				c.LastUpdateTime = o.LastUpdateTime
			}
		}
	}
	return c
}

func ptr[T any](v T) *T { return &v }
