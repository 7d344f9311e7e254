package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// disruptedTimeout is how long an evicted pod that is still not being
// deleted counts as disrupted (kube-controller-manager's DeletionTimeout).
const disruptedTimeout = 2 * time.Minute

func (m *Manager) reconcileDisruptionBudgets(ctx context.Context) error {
	var pdbs policyv1.PodDisruptionBudgetList
	if err := m.c.List(ctx, &pdbs, "", nil); err != nil || len(pdbs.Items) == 0 {
		return err
	}
	var pods corev1.PodList
	if err := m.c.List(ctx, &pods, "", nil); err != nil {
		return err
	}
	for i := range pdbs.Items {
		pdb := &pdbs.Items[i]
		if pdb.DeletionTimestamp != nil || !m.cfg.Owns(m.chain.WorkloadKey(pdb)) {
			continue
		}
		if err := m.syncDisruptionBudget(ctx, pdb, pods.Items); err != nil {
			m.log.Warn("sync poddisruptionbudget", "pdb", pdb.Namespace+"/"+pdb.Name, "err", err)
		}
	}
	return nil
}

// syncDisruptionBudget computes a budget's status as Kubernetes'
// disruption controller does: the pods it covers (expected), how many must
// stay healthy (desired), how many are (current, ready and not being
// evicted), and so how many disruptions it allows now.
func (m *Manager) syncDisruptionBudget(ctx context.Context, pdb *policyv1.PodDisruptionBudget, all []corev1.Pod) error {
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		return err
	}
	now := m.cfg.Now()
	var pods []*corev1.Pod
	for i := range all {
		p := &all[i]
		if p.Namespace == pdb.Namespace && sel.Matches(labels.Set(p.Labels)) {
			pods = append(pods, p)
		}
	}
	st := policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation}
	// Evictions not yet seen through stay counted as disrupted until the pod
	// is being deleted, or for two minutes.
	live := map[string]*corev1.Pod{}
	for _, p := range pods {
		live[p.Name] = p
	}
	for name, at := range pdb.Status.DisruptedPods {
		if p := live[name]; p != nil && p.DeletionTimestamp == nil && now.Before(at.Add(disruptedTimeout)) {
			if st.DisruptedPods == nil {
				st.DisruptedPods = map[string]metav1.Time{}
			}
			st.DisruptedPods[name] = at
		}
	}
	for _, p := range pods {
		if _, evicted := st.DisruptedPods[p.Name]; p.DeletionTimestamp == nil && podReady(p) && !evicted {
			st.CurrentHealthy++
		}
	}
	expected, desired, why := m.budgetNeeds(ctx, pdb, pods)
	st.ExpectedPods, st.DesiredHealthy = expected, desired
	cond := metav1.Condition{Type: policyv1.DisruptionAllowedCondition, ObservedGeneration: pdb.Generation}
	switch {
	case why != "":
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, policyv1.SyncFailedReason, why
	case st.CurrentHealthy > desired:
		st.DisruptionsAllowed = st.CurrentHealthy - desired
		cond.Status, cond.Reason = metav1.ConditionTrue, policyv1.SufficientPodsReason
	default:
		cond.Status, cond.Reason = metav1.ConditionFalse, policyv1.InsufficientPodsReason
	}
	st.Conditions = append([]metav1.Condition(nil), pdb.Status.Conditions...)
	cond.LastTransitionTime = metav1.NewTime(now)
	meta.SetStatusCondition(&st.Conditions, cond)
	if equality.Semantic.DeepEqual(st, pdb.Status) {
		return nil
	}
	pdb.Status = st
	return m.c.UpdateStatus(ctx, pdb)
}

// budgetNeeds returns how many pods the budget expects and how many of
// them must be healthy. An integer minAvailable counts the pods it covers;
// a percentage or maxUnavailable counts the replicas their controllers
// want, read from each controller's scale (the topmost one, so a
// Deployment's rather than its ReplicaSet's). why says what is missing
// when that cannot be known.
func (m *Manager) budgetNeeds(ctx context.Context, pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod) (expected, desired int32, why string) {
	if v := pdb.Spec.MinAvailable; v != nil && v.Type == intstr.Int {
		return int32(len(pods)), v.IntVal, ""
	}
	scales := map[types.UID]int32{}
	for _, p := range pods {
		ref := metav1.GetControllerOf(p)
		if ref == nil {
			return 0, 0, fmt.Sprintf("pod %s has no controller: a percentage or maxUnavailable needs pods of controllers with a scale (Deployments, ReplicaSets); use an integer minAvailable", p.Name)
		}
		uid, replicas, err := m.scaleOf(ctx, p.Namespace, ref)
		if err != nil {
			return 0, 0, err.Error()
		}
		scales[uid] = replicas
	}
	for _, n := range scales {
		expected += n
	}
	if v := pdb.Spec.MinAvailable; v != nil {
		n, _ := intstr.GetScaledValueFromIntOrPercent(v, int(expected), true)
		return expected, int32(n), ""
	}
	n, _ := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(expected), true)
	return expected, max(0, expected-int32(n)), ""
}

// scaleOf follows ref up the chain of controllers to the topmost one
// with a scale subresource and returns its UID and wanted replicas.
func (m *Manager) scaleOf(ctx context.Context, namespace string, first *metav1.OwnerReference) (types.UID, int32, error) {
	var found types.UID
	var replicas int32
	ref := first
	for range 8 {
		r := m.resourceOf(ref)
		if r == nil {
			break
		}
		obj := r.New()
		obj.SetNamespace(namespace)
		obj.SetName(ref.Name)
		if err := m.c.Get(ctx, obj); err != nil || obj.GetUID() != ref.UID {
			break
		}
		sc, err := r.Scale(obj)
		if err != nil {
			break
		}
		found, replicas = obj.GetUID(), sc.Spec.Replicas
		if ref = metav1.GetControllerOf(obj); ref == nil {
			break
		}
	}
	if found == "" {
		return "", 0, fmt.Errorf("found no controller with a scale subresource for %s %s: a percentage or maxUnavailable needs one; use an integer minAvailable", first.Kind, first.Name)
	}
	return found, replicas, nil
}

// resourceOf finds the served resource of an owner reference.
func (m *Manager) resourceOf(ref *metav1.OwnerReference) *objects.Resource {
	for _, r := range m.c.Resources() {
		if r.GroupVersion.String() == ref.APIVersion && r.Kind == ref.Kind {
			return r
		}
	}
	return nil
}
