package objects

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

const widgetCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Size, type: string, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "self.replicas <= 10"
              message: "at most 10 replicas"
            properties:
              size: {type: string, enum: [small, large], default: small}
              replicas: {type: integer, minimum: 0, default: 1}
          status:
            type: object
            properties:
              replicas: {type: integer}
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`

func widget(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestCustomResourcesFollowTheirCRD(t *testing.T) {
	o, _ := newTestObjects(t)
	ctx := context.Background()
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal([]byte(widgetCRD), crd); err != nil {
		t.Fatal(err)
	}
	if err := o.Create(ctx, crd); err != nil {
		t.Fatal(err)
	}
	// A new CRD lists no conditions yet, as an empty list: `kubectl wait
	// --for=condition=established` right after the create fails on null.
	if raw, _ := json.Marshal(crd.Status); !strings.Contains(string(raw), `"conditions":[]`) {
		t.Fatalf("new CRD's status %s, want conditions []", raw)
	}
	if err := o.SyncCustom(ctx); err != nil {
		t.Fatal(err)
	}
	res := o.Lookup(schema.GroupVersion{Group: "example.com", Version: "v1"}, "widgets")
	if res == nil || !res.Custom() || !res.HasSub("status") || !res.HasSub("scale") || o.Lookup(schema.GroupVersion{Group: "example.com", Version: "v1beta1"}, "widgets") == nil {
		t.Fatalf("widgets not served as the CRD says: %+v", res)
	}

	// Unknown fields are pruned, defaults applied, status dropped on create.
	w := widget(t, `{apiVersion: example.com/v1, kind: Widget, metadata: {name: w1, namespace: default}, spec: {extra: 1}, status: {replicas: 5}}`)
	if err := o.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	got, err := o.In(res).Get("default", "w1")
	if err != nil {
		t.Fatal(err)
	}
	spec := got.(*unstructured.Unstructured).Object["spec"].(map[string]any)
	if _, ok := spec["extra"]; ok || spec["size"] != "small" || spec["replicas"] != int64(1) || got.(*unstructured.Unstructured).Object["status"] != nil || got.GetGeneration() != 1 {
		t.Fatalf("stored widget %v, want extra pruned, size and replicas defaulted, no status, generation 1", got.(*unstructured.Unstructured).Object)
	}
	if cells := res.Cells(got, got.GetCreationTimestamp().Time); len(cells) != 2 || cells[0] != "w1" || cells[1] != "small" {
		t.Fatalf("table cells %v, want [w1 small]", cells)
	}

	// The schema, its enum and its CEL rule are enforced with field paths.
	for doc, want := range map[string]string{
		`{apiVersion: example.com/v1, kind: Widget, metadata: {name: w2, namespace: default}, spec: {size: huge}}`:   "spec.size",
		`{apiVersion: example.com/v1, kind: Widget, metadata: {name: w3, namespace: default}, spec: {replicas: -1}}`: "spec.replicas",
		`{apiVersion: example.com/v1, kind: Widget, metadata: {name: w4, namespace: default}, spec: {replicas: 11}}`: "at most 10 replicas",
	} {
		if err := o.Create(ctx, widget(t, doc)); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("create %s: %v, want 422 naming %s", doc, err, want)
		}
	}

	// Status is kept apart from spec; only spec changes count as generations.
	cur := got.(*unstructured.Unstructured)
	cur.Object["status"] = map[string]any{"replicas": int64(3)}
	if err := o.UpdateStatus(ctx, cur); err != nil {
		t.Fatal(err)
	}
	unstructured.SetNestedField(cur.Object, "large", "spec", "size")
	cur.Object["status"] = map[string]any{"replicas": int64(9)}
	if err := o.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	got, _ = o.In(res).Get("default", "w1")
	if st, _, _ := unstructured.NestedInt64(got.(*unstructured.Unstructured).Object, "status", "replicas"); st != 3 || got.GetGeneration() != 2 {
		t.Fatalf("after status then spec updates: status replicas %d, generation %d; want 3 and 2", st, got.GetGeneration())
	}
	if sc, err := res.Scale(got); err != nil || sc.Spec.Replicas != 1 || sc.Status.Replicas != 3 {
		t.Fatalf("scale %+v, %v", sc, err)
	}

	// Another version reads the same objects.
	beta := o.Lookup(schema.GroupVersion{Group: "example.com", Version: "v1beta1"}, "widgets")
	if b, err := o.In(beta).Get("default", "w1"); err != nil || b.GetObjectKind().GroupVersionKind().Version != "v1beta1" {
		t.Fatalf("w1 through v1beta1: %v, %v", b, err)
	}

	// A CRD without a structural schema is refused by apiextensions' validation.
	bad := crd.DeepCopy()
	bad.ObjectMeta = metav1.ObjectMeta{Name: "gadgets.example.com"}
	bad.Spec.Names = apiextensionsv1.CustomResourceDefinitionNames{Plural: "gadgets", Kind: "Gadget"}
	bad.Spec.Versions = bad.Spec.Versions[:1]
	bad.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = apiextensionsv1.JSONSchemaProps{}
	if err := o.Create(ctx, bad); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "type: Required value") {
		t.Fatalf("non-structural CRD: %v", err)
	}
}

// TestCustomSelectableFieldsAndTermination: a version's selectableFields
// are field labels ("" where missing), and once the CRD is being deleted no
// new object of it is accepted.
func TestCustomSelectableFieldsAndTermination(t *testing.T) {
	o, _ := newTestObjects(t)
	ctx := context.Background()
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal([]byte(widgetCRD), crd); err != nil {
		t.Fatal(err)
	}
	crd.Spec.Versions[0].SelectableFields = []apiextensionsv1.SelectableField{{JSONPath: ".spec.size"}}
	if err := o.Create(ctx, crd); err != nil {
		t.Fatal(err)
	}
	if err := o.SyncCustom(ctx); err != nil {
		t.Fatal(err)
	}
	res := o.Lookup(schema.GroupVersion{Group: "example.com", Version: "v1"}, "widgets")
	for _, doc := range []string{
		`{apiVersion: example.com/v1, kind: Widget, metadata: {name: big, namespace: default}, spec: {size: large}}`,
		`{apiVersion: example.com/v1, kind: Widget, metadata: {name: small, namespace: default}, spec: {}}`,
	} {
		if err := o.Create(ctx, widget(t, doc)); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := res.FieldSet(res.New())["spec.size"]; !ok {
		t.Fatal("spec.size is not a field label of widgets")
	}
	list, err := o.In(res).List("default", nil, fields.OneTermEqualSelector("spec.size", "large"))
	if err != nil || len(list.Items) != 1 || list.Items[0].GetName() != "big" {
		t.Fatalf("widgets with spec.size=large: %v, %v", list.Items, err)
	}

	if err := o.Delete(ctx, crd, nil); err != nil {
		t.Fatal(err)
	}
	if err := o.SyncCustom(ctx); err != nil {
		t.Fatal(err)
	}
	err = o.Create(ctx, widget(t, `{apiVersion: example.com/v1, kind: Widget, metadata: {name: late, namespace: default}}`))
	if !apierrors.IsMethodNotSupported(err) || !strings.Contains(err.Error(), "terminating") {
		t.Fatalf("create while the CRD terminates: %v, want 405", err)
	}
}
