package controller

import (
	"context"
	"errors"
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

// collectGarbage deletes the objects, of every served resource, whose
// controller (named in their ownerReferences, of a served kind) is gone or
// being deleted, and expired Events. Dependents are listed before owners,
// so a dependent created together with its owner is never mistaken for an
// orphan.
func (m *Manager) collectGarbage(ctx context.Context) error {
	controllers := map[schema.GroupVersionKind]bool{}
	for _, r := range m.c.Resources() {
		if r.Controls() {
			controllers[r.GVK()] = true
		}
	}
	var dependents []objects.Object
	for _, r := range m.c.Resources() {
		objs, err := m.listAll(ctx, r, "")
		if err != nil {
			return err
		}
		for _, o := range objs {
			ref := metav1.GetControllerOf(o)
			if ref != nil && o.GetDeletionTimestamp() == nil && controllers[schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)] {
				dependents = append(dependents, o)
			}
		}
	}
	owners := map[types.UID]bool{}
	for _, r := range m.c.Resources() {
		if !r.Controls() {
			continue
		}
		objs, err := m.listAll(ctx, r, "")
		if err != nil {
			return err
		}
		for _, o := range objs {
			if o.GetDeletionTimestamp() == nil {
				owners[o.GetUID()] = true
			}
		}
	}
	var errs []error
	for _, o := range dependents {
		if ref := metav1.GetControllerOf(o).UID; !owners[ref] && m.cfg.Owns(m.chain.WorkloadKey(o)) {
			errs = append(errs, m.c.Delete(ctx, o, nil))
		}
	}
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
