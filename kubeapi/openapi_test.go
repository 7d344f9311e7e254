package kubeapi

import (
	"testing"

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
}
