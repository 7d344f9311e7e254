package controller

import (
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func gadgetCRD(name, kind string) *apiextensionsv1.CustomResourceDefinition {
	plural := name[:len(name)-len(".example.com")]
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: plural, Kind: kind},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: new(true)}}}},
		},
	}
}

func TestCRDsAreEstablishedAndTakeTheirObjectsWithThem(t *testing.T) {
	h := newHarness(t)
	crd := gadgetCRD("gadgets.example.com", "Gadget")
	if err := h.objs.Create(h.ctx, crd); err != nil {
		t.Fatal(err)
	}
	h.m.ReconcileAll(h.ctx)
	h.objs.Get(h.ctx, crd)
	established := func(c *apiextensionsv1.CustomResourceDefinition) apiextensionsv1.ConditionStatus {
		for _, cond := range c.Status.Conditions {
			if cond.Type == apiextensionsv1.Established {
				return cond.Status
			}
		}
		return ""
	}
	if established(crd) != apiextensionsv1.ConditionTrue || crd.Status.AcceptedNames.Kind != "Gadget" {
		t.Fatalf("status %+v, want Established and the names accepted", crd.Status)
	}
	// A later CRD claiming the same kind in the group is not accepted.
	dup := gadgetCRD("widgets.example.com", "Gadget")
	if err := h.objs.Create(h.ctx, dup); err != nil {
		t.Fatal(err)
	}
	h.m.ReconcileAll(h.ctx)
	h.objs.Get(h.ctx, dup)
	if established(dup) != apiextensionsv1.ConditionFalse {
		t.Fatalf("duplicate kind: status %+v, want not Established", dup.Status)
	}

	if err := h.objs.SyncCustom(h.ctx); err == nil {
		t.Fatal("serving two CRDs of one kind reported no problem")
	}
	g := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": map[string]any{"name": "g1", "namespace": "default"}}}
	if err := h.objs.Create(h.ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := h.objs.Delete(h.ctx, crd, nil); err != nil {
		t.Fatal(err)
	}
	h.m.ReconcileAll(h.ctx)
	if err := h.objs.Get(h.ctx, g); !apierrors.IsNotFound(err) {
		t.Fatalf("gadget after its CRD was deleted: %v", err)
	}
	if err := h.objs.Get(h.ctx, crd); !apierrors.IsNotFound(err) {
		t.Fatalf("CRD after its objects went: %v", err)
	}
}
