package objects

import (
	"context"
	"slices"
	"time"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsinstall "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// crdScheme converts CRDs between apiextensions.k8s.io/v1 and the internal
// types apiextensions-apiserver validates and builds schemas from, and
// applies v1's defaults.
var crdScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	apiextensionsinstall.Install(s)
	return s
}()

// internalCRD converts a v1 CRD to apiextensions-apiserver's internal type.
func internalCRD(crd *apiextensionsv1.CustomResourceDefinition) (*apiextensions.CustomResourceDefinition, error) {
	out := &apiextensions.CustomResourceDefinition{}
	err := crdScheme.Convert(crd, out, nil)
	return out, err
}

// crdResource is apiextensions.k8s.io/v1 customresourcedefinitions. Every
// node serves the custom resources of the CRDs it holds (ServeCustom); the
// CRD's owner accepts its names and, when it is deleted, deletes its
// objects before the CRD goes.
func crdResource() *Resource {
	return &Resource{
		GroupVersion: apiextensionsv1.SchemeGroupVersion, Plural: "customresourcedefinitions", Singular: "customresourcedefinition", Kind: "CustomResourceDefinition",
		ShortNames: []string{"crd", "crds"}, Categories: []string{"api-extensions"}, Subresources: []string{"status"},
		install:  apiextensionsv1.AddToScheme,
		newObj:   func() Object { return &apiextensionsv1.CustomResourceDefinition{} },
		newList:  func() runtime.Object { return &apiextensionsv1.CustomResourceDefinitionList{} },
		defaults: func(o Object) { crdScheme.Default(o) },
		syncStatus: func(o Object) {
			// As kube-apiserver does: the storage version is a stored version.
			crd := o.(*apiextensionsv1.CustomResourceDefinition)
			if crd.Status.Conditions == nil {
				// An empty list, not null (the field has no omitempty):
				// `kubectl wait --for=condition=established` right after
				// the create fails on a null list, and waits on an empty one.
				crd.Status.Conditions = []apiextensionsv1.CustomResourceDefinitionCondition{}
			}
			for _, v := range crd.Spec.Versions {
				if v.Storage && !slices.Contains(crd.Status.StoredVersions, v.Name) {
					crd.Status.StoredVersions = append(crd.Status.StoredVersions, v.Name)
				}
			}
		},
		generation: true,
		validate:   validateCRD,
		finishes:   true,
		graceful: func(cur Object, opts DeleteOptions) (int64, bool) {
			// Its objects go first; the owner then removes it.
			return 0, !(zeroGrace(opts) && cur.GetDeletionTimestamp() != nil)
		},
		columns: []metav1.TableColumnDefinition{
			nameCol(),
			col("Created At", "date", "The time the CRD was created.", 0),
		},
		cells: func(o Object, now time.Time) []any {
			return []any{o.GetName(), o.GetCreationTimestamp().UTC().Format(time.RFC3339)}
		},
	}
}

// validateCRD validates with apiextensions-apiserver's own validation: names,
// versions, a structural schema for every version, printer columns,
// subresources, and what an update may not change.
func validateCRD(obj, old Object) field.ErrorList {
	crd, err := internalCRD(obj.(*apiextensionsv1.CustomResourceDefinition))
	if err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("spec"), "", err.Error())}
	}
	ctx := context.Background()
	if old == nil {
		return crdvalidation.ValidateCustomResourceDefinition(ctx, crd)
	}
	prev, err := internalCRD(old.(*apiextensionsv1.CustomResourceDefinition))
	if err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("spec"), "", err.Error())}
	}
	return crdvalidation.ValidateCustomResourceDefinitionUpdate(ctx, crd, prev)
}
