package controller

import (
	"context"
	"fmt"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// reconcileCRDs does what kube-apiserver's CRD controllers do for the CRDs
// this node owns: accept their names (unless an older CRD of the group
// holds them) and mark them Established, and when one is deleted, delete
// its objects and then the CRD.
func (m *Manager) reconcileCRDs(ctx context.Context) error {
	var crds apiextensionsv1.CustomResourceDefinitionList
	if err := m.c.List(ctx, &crds, "", nil); err != nil || len(crds.Items) == 0 {
		return err
	}
	for i := range crds.Items {
		crd := &crds.Items[i]
		if !m.cfg.Owns(m.chain.WorkloadKey(crd)) {
			continue
		}
		var err error
		if crd.DeletionTimestamp != nil {
			err = m.finishCRD(ctx, crd)
		} else {
			err = m.acceptCRD(ctx, crd, crds.Items)
		}
		if err != nil {
			m.log.Warn("sync customresourcedefinition", "crd", crd.Name, "err", err)
		}
	}
	return nil
}

func (m *Manager) acceptCRD(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition, all []apiextensionsv1.CustomResourceDefinition) error {
	st := crd.Status.DeepCopy()
	names := metav1.ConditionTrue
	reason, msg := "NoConflicts", "no conflicts found"
	for i := range all {
		o := &all[i]
		older := o.CreationTimestamp.Before(&crd.CreationTimestamp) || (o.CreationTimestamp.Equal(&crd.CreationTimestamp) && o.Name < crd.Name)
		if o.UID == crd.UID || o.Spec.Group != crd.Spec.Group || !older {
			continue
		}
		if o.Spec.Names.Kind == crd.Spec.Names.Kind || o.Spec.Names.ListKind == crd.Spec.Names.ListKind {
			names, reason, msg = metav1.ConditionFalse, "KindConflict", fmt.Sprintf("%q is already in use by %s", crd.Spec.Names.Kind, o.Name)
		}
	}
	set := func(t apiextensionsv1.CustomResourceDefinitionConditionType, s metav1.ConditionStatus, reason, msg string) {
		setCRDCondition(st, t, s, reason, msg, m.cfg.Now())
	}
	set(apiextensionsv1.NamesAccepted, names, reason, msg)
	if names == metav1.ConditionTrue {
		st.AcceptedNames = crd.Spec.Names
		set(apiextensionsv1.Established, metav1.ConditionTrue, "InitialNamesAccepted", "the initial names have been accepted")
	} else {
		set(apiextensionsv1.Established, metav1.ConditionFalse, "NotAccepted", "not all names are accepted")
	}
	if equality.Semantic.DeepEqual(st, &crd.Status) {
		return nil
	}
	crd.Status = *st
	return m.c.UpdateStatus(ctx, crd)
}

// setCRDCondition sets a condition in st, keeping its transition time if
// its status did not change.
func setCRDCondition(st *apiextensionsv1.CustomResourceDefinitionStatus, t apiextensionsv1.CustomResourceDefinitionConditionType, s metav1.ConditionStatus, reason, msg string, now time.Time) {
	c := apiextensionsv1.CustomResourceDefinitionCondition{Type: t, Status: apiextensionsv1.ConditionStatus(s), Reason: reason, Message: msg,
		LastTransitionTime: metav1.NewTime(now)}
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			if st.Conditions[i].Status == c.Status {
				c.LastTransitionTime = st.Conditions[i].LastTransitionTime
			}
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}

// finishCRD deletes the objects of a deleted CRD, then the CRD, reporting
// Terminating meanwhile as kube-apiserver's finalizer controller does (new
// objects are refused while the CRD is marked: objects.PrepareCreate).
func (m *Manager) finishCRD(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) error {
	st := crd.Status.DeepCopy()
	setCRDCondition(st, apiextensionsv1.Terminating, metav1.ConditionTrue, "InstanceDeletionInProgress", "CustomResource deletion is in progress", m.cfg.Now())
	if !equality.Semantic.DeepEqual(st, &crd.Status) {
		crd.Status = *st
		if err := m.c.UpdateStatus(ctx, crd); err != nil {
			return err
		}
	}
	var storage string
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			storage = v.Name
		}
	}
	zero := int64(0)
	served := false
	for _, r := range m.c.Resources() {
		served = served || (r.Custom() && r.GroupVersion == schema.GroupVersion{Group: crd.Spec.Group, Version: storage} && r.Plural == crd.Spec.Names.Plural)
	}
	if !served { // never served here (its schema did not build): nothing stored
		return m.c.Delete(ctx, crd, &zero)
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(schema.GroupVersionKind{Group: crd.Spec.Group, Version: storage, Kind: crd.Spec.Names.ListKind})
	if err := m.c.List(ctx, list, "", nil); err != nil {
		return err
	}
	for i := range list.Items {
		if err := m.c.Delete(ctx, &list.Items[i], &zero); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return m.c.Delete(ctx, crd, &zero)
}
