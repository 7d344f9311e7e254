package controller

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// reconcileServiceAccounts gives every active namespace its "default"
// ServiceAccount, as Kubernetes' serviceaccounts controller does: created
// with the namespace, re-created if deleted. The namespace's owner does it.
func (m *Manager) reconcileServiceAccounts(ctx context.Context) error {
	var nss corev1.NamespaceList
	if err := m.c.List(ctx, &nss, "", nil); err != nil {
		return err
	}
	var errs []error
	for i := range nss.Items {
		ns := &nss.Items[i]
		if ns.DeletionTimestamp != nil || !m.cfg.Owns(ns.UID) {
			continue
		}
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: objects.DefaultServiceAccount, Namespace: ns.Name}}
		err := m.c.Get(ctx, sa)
		if apierrors.IsNotFound(err) {
			err = m.c.Create(ctx, sa)
		}
		// A namespace deleted meanwhile refuses new content: nothing to do.
		if err != nil && !apierrors.IsAlreadyExists(err) && !apierrors.IsForbidden(err) && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
