package controller

import (
	"context"
	"errors"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mycelfabric/mycel/kubeapi"
)

// EventTTL is how long Events are kept, as in Kubernetes.
const EventTTL = time.Hour

// collectGarbage deletes ReplicaSets whose Deployment is gone, Pods whose
// ReplicaSet is gone, and expired Events. Owners are listed after their
// dependents, so a dependent created together with its owner is never
// mistaken for an orphan.
func (m *Manager) collectGarbage(ctx context.Context) error {
	var pods corev1.PodList
	if err := m.c.List(ctx, &pods, "", nil); err != nil {
		return err
	}
	var rss appsv1.ReplicaSetList
	if err := m.c.List(ctx, &rss, "", nil); err != nil {
		return err
	}
	var ds appsv1.DeploymentList
	if err := m.c.List(ctx, &ds, "", nil); err != nil {
		return err
	}
	deployments := map[types.UID]bool{}
	for _, d := range ds.Items {
		if d.DeletionTimestamp == nil {
			deployments[d.UID] = true
		}
	}
	replicaSets := map[types.UID]bool{}
	var errs []error
	for i := range rss.Items {
		rs := &rss.Items[i]
		if ref := ownerOfKind(rs.OwnerReferences, "Deployment"); ref != "" && !deployments[ref] && m.cfg.Owns(ref) {
			errs = append(errs, m.c.Delete(ctx, rs, nil))
			continue
		}
		replicaSets[rs.UID] = true
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if ref := ownerOfKind(p.OwnerReferences, "ReplicaSet"); ref != "" && !replicaSets[ref] && p.DeletionTimestamp == nil && m.cfg.Owns(ref) {
			errs = append(errs, m.c.Delete(ctx, p, nil))
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

func ownerOfKind(refs []metav1.OwnerReference, kind string) types.UID {
	for _, r := range refs {
		if r.Controller != nil && *r.Controller && r.Kind == kind {
			return r.UID
		}
	}
	return ""
}

// reconcileNamespaces empties namespaces marked for deletion and removes
// them once nothing is left in them.
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
		for _, list := range []runtime.Object{&appsv1.DeploymentList{}, &appsv1.ReplicaSetList{}, &corev1.PodList{}, &corev1.EventList{}} {
			if err := m.c.List(ctx, list, ns.Name, nil); err != nil {
				return err
			}
			items, err := meta.ExtractList(list)
			if err != nil {
				return err
			}
			for _, item := range items {
				obj := item.(kubeapi.Object)
				left++
				if obj.GetDeletionTimestamp() == nil {
					if err := m.c.Delete(ctx, obj, nil); err != nil {
						return err
					}
				}
			}
		}
		if left == 0 {
			zero := int64(0)
			if err := m.c.Delete(ctx, ns, &zero); err != nil {
				return err
			}
		}
	}
	return nil
}
