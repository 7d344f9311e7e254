package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const widgetCRD = `apiVersion: apiextensions.k8s.io/v1
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
    selectableFields:
    - {jsonPath: .spec.size}
    additionalPrinterColumns:
    - {name: Size, type: string, jsonPath: .spec.size}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            description: What the widget should be.
            properties:
              size: {type: string, enum: [small, large], default: small, description: How big the widget is.}
              replicas: {type: integer, minimum: 0, default: 1}
          status:
            type: object
            properties:
              replicas: {type: integer}
`

func widget(name, size string) string {
	return fmt.Sprintf(`apiVersion: example.com/v1
kind: Widget
metadata: {name: %s, namespace: default}
spec: {size: %s}
`, name, size)
}

// TestCustomResourcesWithKubectl: a CRD applied through one node is
// Established and its custom resources are served at once by the other
// node: created with defaults, validated against the schema, shown with the
// printer columns and short name, explained from the schema, selected by
// a selectable field, scaled, patched, applied server-side, and deleted with the CRD.
func TestCustomResourcesWithKubectl(t *testing.T) {
	a := startNode(t)
	b := joinNode(t, a)
	if out, err := a.kubectlIn(widgetCRD, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply CRD: %v\n%s", err, out)
	}
	a.kubectl("wait", "--for=condition=established", "crd/widgets.example.com", "--timeout=30s")
	eventually(t, 30*time.Second, func() error {
		_, err := b.kubectlIn(widget("w1", "large"), "apply", "-f", "-")
		return err
	})
	if _, err := a.kubectlIn(widget("w2", "small"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	out := a.kubectl("get", "wd")
	if !strings.Contains(out, "SIZE") || !strings.Contains(out, "REPLICAS") || !strings.Contains(out, "w1") || !strings.Contains(out, "large") {
		t.Fatalf("kubectl get wd:\n%s", out)
	}
	if r := a.kubectl("get", "widget", "w2", "-o", "jsonpath={.spec.replicas}"); r != "1" {
		t.Fatalf("defaulted replicas %q, want 1", r)
	}
	if out, err := b.kubectlIn(widget("w3", "huge"), "apply", "-f", "-"); err == nil || !strings.Contains(out, "spec.size") || !strings.Contains(out, `Unsupported value: "huge"`) {
		t.Fatalf("a widget violating the schema: %v\n%s", err, out)
	}
	if out, err := b.kubectlIn(strings.Replace(widget("w3", "small"), "size: small", "size: small, colour: red", 1), "apply", "-f", "-"); err == nil || !strings.Contains(out, `unknown field "spec.colour"`) {
		t.Fatalf("a widget with a field its schema does not declare, under kubectl's strict validation: %v\n%s", err, out)
	}
	if out := b.kubectl("explain", "widget.spec.size"); !strings.Contains(out, "How big the widget is.") {
		t.Fatalf("kubectl explain widget.spec.size:\n%s", out)
	}
	b.kubectl("scale", "widget", "w1", "--replicas=3")
	b.kubectl("label", "widget", "w1", "team=blue")
	b.kubectl("patch", "widget", "w2", "--type=merge", "-p", `{"spec":{"size":"large"}}`)
	if out := a.kubectl("get", "widgets", "-l", "team=blue", "-o", "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas", "--no-headers"); strings.Join(strings.Fields(out), " ") != "w1 3" {
		t.Fatalf("after scale and label: %q", out)
	}
	if out := b.kubectl("get", "widgets", "--field-selector", "spec.size=large", "-o", "name"); out != "widget.example.com/w1\nwidget.example.com/w2\n" {
		t.Fatalf("widgets with spec.size=large (a selectable field): %q", out)
	}
	if out, err := a.kubectlIn(widget("w4", "small"), "apply", "--server-side", "-f", "-"); err != nil || !strings.Contains(out, "serverside-applied") {
		t.Fatalf("server-side apply of a widget: %v\n%s", err, out)
	}
	if mf := a.kubectl("get", "widget", "w4", "--show-managed-fields", "-o", "jsonpath={.metadata.managedFields[0].manager}"); mf != "kubectl" {
		t.Fatalf("managed fields of an applied widget: %q", mf)
	}

	a.kubectl("delete", "crd", "widgets.example.com", "--timeout=60s")
	eventually(t, 30*time.Second, func() error {
		if out, err := b.kubectlErr("get", "widgets"); err == nil {
			return fmt.Errorf("widgets still served after the CRD's deletion:\n%s", out)
		}
		return nil
	})
}
