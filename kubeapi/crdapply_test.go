package kubeapi

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const routeCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: routes.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: routes, singular: route, kind: Route}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              backends:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    weight: {type: integer}
`

// TestServerSideApplyOfCustomResourcesFollowsTheirSchema: two managers
// applying different entries of a list the CRD declares a map keyed by
// name both keep theirs, as on Kubernetes (a schema-less, deduced typing
// would make the list atomic and the second apply take it whole).
func TestServerSideApplyOfCustomResourcesFollowsTheirSchema(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal([]byte(routeCRD), &crd); err != nil {
		t.Fatal(err)
	}
	if err := f.objs.Create(ctx, &crd); err != nil {
		t.Fatal(err)
	}
	if err := f.objs.SyncCustom(ctx); err != nil {
		t.Fatal(err)
	}
	apply := func(manager, backend string) {
		t.Helper()
		body := `{"apiVersion":"example.com/v1","kind":"Route","metadata":{"name":"r","namespace":"default"},"spec":{"backends":[{"name":"` + backend + `","weight":1}]}}`
		code, out, _ := f.do(t, f.http, http.MethodPatch, "/apis/example.com/v1/namespaces/default/routes/r?fieldManager="+manager, "application/apply-patch+yaml", body)
		if code != http.StatusOK && code != http.StatusCreated {
			t.Fatalf("apply by %s: %d %s", manager, code, out)
		}
	}
	apply("team-a", "blue")
	apply("team-b", "green")
	code, out, _ := f.do(t, f.http, http.MethodGet, "/apis/example.com/v1/namespaces/default/routes/r", "", "")
	var got struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
		Spec     struct {
			Backends []struct{ Name string } `json:"backends"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(out, &got); code != http.StatusOK || err != nil {
		t.Fatalf("get: %d %s", code, out)
	}
	if len(got.Spec.Backends) != 2 || got.Spec.Backends[0].Name != "blue" || got.Spec.Backends[1].Name != "green" {
		t.Fatalf("backends %+v, want blue (team-a) and green (team-b)", got.Spec.Backends)
	}
	if len(got.Metadata.ManagedFields) != 2 {
		t.Fatalf("managedFields %+v, want one entry per manager", got.Metadata.ManagedFields)
	}
}
