package objects

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// maxDisruptedPods bounds a budget's status.disruptedPods, as
// kube-apiserver does.
const maxDisruptedPods = 2000

// evictionRetries is how often an eviction re-reads a budget another
// eviction changed meanwhile before it gives up with 429.
const evictionRetries = 3

// Evict deletes a pod the way the pods/eviction subresource does, as
// kube-apiserver decides it: a pod no PodDisruptionBudget covers, one that
// is not running yet or has ended, and an unready one the budget's
// unhealthyPodEvictionPolicy lets go are deleted; otherwise the budget must
// allow a disruption, which the eviction spends (status.disruptionsAllowed
// goes down, the pod is listed in status.disruptedPods until it is gone).
// A refusal is 429 TooManyRequests with a DisruptionBudget cause, which
// `kubectl drain` retries. With dryRun nothing is written.
//
// The budget is spent on this node's copy: two evictions through two nodes
// within replication delay can each spend the same disruption.
func (o *Objects) Evict(ctx context.Context, namespace, name string, opts DeleteOptions, dryRun bool) error {
	pods := o.In(o.builtin.byGVK[corev1.SchemeGroupVersion.WithKind("Pod")])
	for attempt := 0; ; attempt++ {
		obj, err := pods.Get(namespace, name)
		if err != nil {
			return err
		}
		pod := obj.(*corev1.Pod)
		if opts.UID != "" && opts.UID != pod.UID {
			return apierrors.NewConflict(pods.r.GroupResource(), name, fmt.Errorf("the UID in the precondition (%s) does not match the UID in record (%s): the object might have been deleted and then recreated", opts.UID, pod.UID))
		}
		pdb, err := o.budgetOf(ctx, pod)
		if err != nil {
			return err
		}
		if pdb != nil && !evictsFreely(pod, pdb) {
			err := o.spendDisruption(ctx, pdb, pod, dryRun)
			if apierrors.IsConflict(err) && attempt < evictionRetries {
				continue // another eviction spent from it meanwhile: look again
			}
			if apierrors.IsConflict(err) {
				return tooManyEvictions(pdb, "The disruption budget "+pdb.Name+" is being changed by other evictions; try again.")
			}
			if err != nil {
				return err
			}
		}
		if dryRun {
			return nil
		}
		_, err = pods.Delete(namespace, name, opts)
		return err
	}
}

// budgetOf returns the one budget that covers pod, nil if none; a pod
// more than one covers cannot be evicted (as in Kubernetes).
func (o *Objects) budgetOf(ctx context.Context, pod *corev1.Pod) (*policyv1.PodDisruptionBudget, error) {
	var list policyv1.PodDisruptionBudgetList
	if err := o.List(ctx, &list, pod.Namespace, nil); err != nil {
		return nil, err
	}
	var match []*policyv1.PodDisruptionBudget
	for i := range list.Items {
		p := &list.Items[i]
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err == nil && sel.Matches(labels.Set(pod.Labels)) { // policy/v1: an empty selector matches every pod
			match = append(match, p)
		}
	}
	switch len(match) {
	case 0:
		return nil, nil
	case 1:
		return match[0], nil
	}
	return nil, apierrors.NewInternalError(fmt.Errorf("this pod has more than one PodDisruptionBudget, which the eviction subresource does not support"))
}

// evictsFreely: the pod may go without spending from its budget.
func evictsFreely(pod *corev1.Pod, pdb *policyv1.PodDisruptionBudget) bool {
	switch {
	case pod.DeletionTimestamp != nil, pod.Status.Phase == corev1.PodSucceeded, pod.Status.Phase == corev1.PodFailed, pod.Status.Phase == corev1.PodPending:
		return true
	case PodReady(pod):
		return false
	case pdb.Spec.UnhealthyPodEvictionPolicy != nil && *pdb.Spec.UnhealthyPodEvictionPolicy == policyv1.AlwaysAllow:
		return true
	}
	// IfHealthyBudget: an unready pod goes while the budget is met.
	return pdb.Status.ObservedGeneration >= pdb.Generation && pdb.Status.DesiredHealthy > 0 && pdb.Status.CurrentHealthy >= pdb.Status.DesiredHealthy
}

// spendDisruption takes one disruption from the budget for pod, with
// optimistic concurrency on the budget.
func (o *Objects) spendDisruption(ctx context.Context, pdb *policyv1.PodDisruptionBudget, pod *corev1.Pod, dryRun bool) error {
	switch {
	case pdb.Status.ObservedGeneration < pdb.Generation:
		return tooManyEvictions(pdb, "The disruption budget "+pdb.Name+" is still being processed by the server.")
	case pdb.Status.DisruptionsAllowed < 0:
		return apierrors.NewForbidden(policyv1.Resource("poddisruptionbudgets"), pdb.Name, fmt.Errorf("pdb disruptions allowed is negative"))
	case len(pdb.Status.DisruptedPods) > maxDisruptedPods:
		return apierrors.NewForbidden(policyv1.Resource("poddisruptionbudgets"), pdb.Name, fmt.Errorf("DisruptedPods map too big - too many evictions not confirmed by PDB controller"))
	case pdb.Status.DisruptionsAllowed == 0:
		return tooManyEvictions(pdb, "")
	}
	if dryRun {
		return nil
	}
	pdb.Status.DisruptionsAllowed--
	if pdb.Status.DisruptedPods == nil {
		pdb.Status.DisruptedPods = map[string]metav1.Time{}
	}
	pdb.Status.DisruptedPods[pod.Name] = metav1.NewTime(o.now())
	return o.UpdateStatus(ctx, pdb)
}

func tooManyEvictions(pdb *policyv1.PodDisruptionBudget, msg string) error {
	err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
	if msg == "" {
		msg = fmt.Sprintf("The disruption budget %s needs %d healthy pods and has %d currently", pdb.Name, pdb.Status.DesiredHealthy, pdb.Status.CurrentHealthy)
	}
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{Type: DisruptionBudgetCause, Message: msg})
	return err
}
