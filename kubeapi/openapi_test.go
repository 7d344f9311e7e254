package kubeapi

import (
	"slices"
	"testing"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/openapi3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// TestEveryResourceHasOpenAPIDefinitions: kubectl apply, explain and
// server-side field validation need the schema of every served kind.
func TestEveryResourceHasOpenAPIDefinitions(t *testing.T) {
	defs := definitions(func(path string) spec.Ref { return spec.MustCreateRef(path) })
	o := objects.New(nil, objects.Config{})
	for _, r := range o.Resources() {
		for _, m := range []any{r.New(), r.NewList()} {
			if _, ok := defs[modelName(m)]; !ok {
				t.Errorf("no OpenAPI definition of %s (%s): add its Go package to the generate target of the Makefile and run `make generate`, or add its library's definitions to definitions()", modelName(m), r.GroupResource())
			}
		}
	}
	for _, g := range append(slices.Clone(reviewGroups), metricsGroup) {
		for _, r := range g.resources {
			for _, m := range r.models() {
				if _, ok := defs[m]; !ok {
					t.Errorf("no OpenAPI definition of %s (%s): add its Go package to the generate target of the Makefile and run `make generate`", m, g.gv)
				}
			}
		}
	}
}

// TestStaticGroupsHaveOpenAPI: kubectl explain finds the schema of a kind
// served outside the object layer (metrics.k8s.io, the reviews) by its
// group-version-kind in the group version's OpenAPI v3 document.
func TestStaticGroupsHaveOpenAPI(t *testing.T) {
	f := newFixture(t)
	root := openapi3.NewRoot(discovery.NewDiscoveryClientForConfigOrDie(f.config).OpenAPIV3())
	for _, g := range append(slices.Clone(reviewGroups), metricsGroup) {
		doc, err := root.GVSpec(g.gv)
		if err != nil {
			t.Fatalf("openapi v3 of %s: %v", g.gv, err)
		}
		for _, r := range g.resources {
			want := g.gv.WithKind(r.Kind)
			found := false
			for _, s := range doc.Components.Schemas {
				gvks, _ := s.Extensions[gvkExt].([]any)
				for _, x := range gvks {
					m, _ := x.(map[string]any)
					found = found || (m["group"] == want.Group && m["version"] == want.Version && m["kind"] == want.Kind)
				}
			}
			if !found {
				t.Errorf("no schema of %s in %s's document", want, g.gv)
			}
		}
		if len(doc.Paths.Paths) == 0 {
			t.Errorf("%s's document has no paths", g.gv)
		}
	}
}
