package controller

import (
	"context"
	"errors"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// EventTTL is how long Events are kept, as in Kubernetes.
const EventTTL = time.Hour

// collectGarbage deletes, as Kubernetes' garbage collector does, the
// objects of every served resource none of whose owners (their
// ownerReferences) is still there, finishes the deletions that wait for
// dependents (finalizeDependents), and deletes expired Events.
func (m *Manager) collectGarbage(ctx context.Context) error {
	byGVK := map[schema.GroupVersionKind]*objects.Resource{}
	for _, r := range m.c.Resources() {
		byGVK[r.GVK()] = r
	}
	var all, dependents []objects.Object
	ownerKinds := map[*objects.Resource]bool{}
	for _, r := range m.c.Resources() {
		objs, err := m.listAll(ctx, r, "")
		if err != nil {
			return err
		}
		all = append(all, objs...)
		for _, o := range objs {
			if o.GetDeletionTimestamp() != nil || len(o.GetOwnerReferences()) == 0 {
				continue
			}
			dependents = append(dependents, o)
			for _, ref := range o.GetOwnerReferences() {
				if r := byGVK[schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)]; r != nil {
					ownerKinds[r] = true
				}
			}
		}
	}
	// Owners are listed after their dependents, so a dependent created
	// together with its owner finds it.
	owners := map[types.UID]objects.Object{}
	for r := range ownerKinds {
		objs, err := m.listAll(ctx, r, "")
		if err != nil {
			return err
		}
		for _, o := range objs {
			owners[o.GetUID()] = o
		}
	}
	var errs []error
	for _, o := range dependents {
		if m.cfg.Owns(m.chain.WorkloadKey(o)) && !m.hasOwner(o, owners, byGVK) {
			errs = append(errs, m.c.Delete(ctx, o, nil))
		}
	}
	errs = append(errs, m.finalizeDependents(ctx, all))
	var events corev1.EventList
	if err := m.c.List(ctx, &events, "", nil); err != nil {
		return err
	}
	cutoff := m.cfg.Now().Add(-EventTTL)
	for i := range events.Items {
		e := &events.Items[i]
		last := e.LastTimestamp.Time
		if last.IsZero() {
			last = e.CreationTimestamp.Time
		}
		if last.Before(cutoff) && m.cfg.Owns(e.UID) {
			errs = append(errs, m.c.Delete(ctx, e, nil))
		}
	}
	return errors.Join(errs...)
}

// hasOwner reports whether one of obj's owners is still there for it,
// with what an eventually consistent replica can know. An owner of a kind
// not served, or one waiting for its dependents, is there; one being
// deleted otherwise is not. An absent controller of a controlling kind is
// gone: the node that reconciles obj's workload made obj from it, so has
// seen it. Any other absent owner is gone only once this replica has seen
// it deleted (Gone): until then it may just not have arrived.
func (m *Manager) hasOwner(obj objects.Object, owners map[types.UID]objects.Object, byGVK map[schema.GroupVersionKind]*objects.Resource) bool {
	for _, ref := range obj.GetOwnerReferences() {
		res := byGVK[schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)]
		owner, present := owners[ref.UID]
		ns := ""
		if res != nil && res.Namespaced {
			ns = obj.GetNamespace()
		}
		switch {
		case res == nil:
			return true
		case present:
			if owner.GetDeletionTimestamp() == nil || waitsForDependents(owner) {
				return true
			}
		case ref.Controller != nil && *ref.Controller && res.Controls():
		case !m.c.Gone(res, ns, ref.Name, ref.UID):
			return true
		}
	}
	return false
}

// waitsForDependents reports whether obj is being deleted with the orphan
// or foregroundDeletion finalizer.
func waitsForDependents(obj objects.Object) bool {
	return obj.GetDeletionTimestamp() != nil &&
		(slices.Contains(obj.GetFinalizers(), metav1.FinalizerOrphanDependents) || slices.Contains(obj.GetFinalizers(), metav1.FinalizerDeleteDependents))
}

// finalizeDependents finishes the deletions the garbage collector's
// finalizers hold, as Kubernetes' does, for every object this node owns:
// orphan removes the object from its dependents' ownerReferences, then the
// finalizer; foregroundDeletion deletes the dependents (in the foreground
// too, so a Deployment waits for its pods through its ReplicaSets) and
// removes the finalizer once none that blocks owner deletion is left.
func (m *Manager) finalizeDependents(ctx context.Context, all []objects.Object) error {
	var errs []error
	for _, owner := range all {
		if !waitsForDependents(owner) || !m.cfg.Owns(m.chain.WorkloadKey(owner)) {
			continue
		}
		orphan := slices.Contains(owner.GetFinalizers(), metav1.FinalizerOrphanDependents)
		var failed []error
		blocking := 0
		for _, dep := range all {
			i := slices.IndexFunc(dep.GetOwnerReferences(), func(r metav1.OwnerReference) bool { return r.UID == owner.GetUID() })
			if i < 0 {
				continue
			}
			ref := dep.GetOwnerReferences()[i]
			if orphan {
				dep.SetOwnerReferences(slices.Delete(slices.Clone(dep.GetOwnerReferences()), i, i+1))
				failed = append(failed, m.c.Update(ctx, dep))
				continue
			}
			if dep.GetDeletionTimestamp() == nil {
				failed = append(failed, m.c.DeleteWith(ctx, dep, objects.DeleteOptions{Propagation: metav1.DeletePropagationForeground}))
			}
			if ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion {
				blocking++
			}
		}
		if err := errors.Join(failed...); err != nil || blocking > 0 {
			errs = append(errs, err)
			continue
		}
		fin := metav1.FinalizerDeleteDependents
		if orphan {
			fin = metav1.FinalizerOrphanDependents
		}
		owner.SetFinalizers(slices.DeleteFunc(slices.Clone(owner.GetFinalizers()), func(f string) bool { return f == fin }))
		errs = append(errs, m.c.Update(ctx, owner))
	}
	return errors.Join(errs...)
}

// listAll lists every object of r in namespace ("" for all).
func (m *Manager) listAll(ctx context.Context, r *objects.Resource, namespace string) ([]objects.Object, error) {
	list := r.NewList()
	if err := m.c.List(ctx, list, namespace, nil); err != nil {
		return nil, err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	out := make([]objects.Object, len(items))
	for i, it := range items {
		out[i] = it.(objects.Object)
	}
	return out, nil
}

// reconcileNamespaces empties namespaces marked for deletion of every
// namespaced resource and removes them once nothing is left in them.
func (m *Manager) reconcileNamespaces(ctx context.Context) error {
	var nss corev1.NamespaceList
	if err := m.c.List(ctx, &nss, "", nil); err != nil {
		return err
	}
	for i := range nss.Items {
		ns := &nss.Items[i]
		if ns.DeletionTimestamp == nil || !m.cfg.Owns(ns.UID) {
			continue
		}
		if ns.Status.Phase != corev1.NamespaceTerminating {
			ns.Status.Phase = corev1.NamespaceTerminating
			if err := m.c.UpdateStatus(ctx, ns); err != nil {
				return err
			}
		}
		left := 0
		for _, r := range m.c.Resources() {
			if !r.Namespaced {
				continue
			}
			objs, err := m.listAll(ctx, r, ns.Name)
			if err != nil {
				return err
			}
			for _, obj := range objs {
				left++
				if obj.GetDeletionTimestamp() == nil {
					if err := m.c.Delete(ctx, obj, nil); err != nil {
						return err
					}
				}
			}
		}
		if left == 0 {
			if err := m.c.Delete(ctx, ns, new(int64(0))); err != nil {
				return err
			}
		}
	}
	return nil
}
