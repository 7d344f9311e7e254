package objects

import (
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var metaPath = field.NewPath("metadata")

// validateMeta checks metadata with apimachinery's validators: names,
// labels, annotations, and on update (old non-nil) what may not change.
func validateMeta(obj, old Object, namespaced bool, nameFn apivalidation.ValidateNameFunc) field.ErrorList {
	errs := apivalidation.ValidateObjectMetaAccessor(obj, namespaced, nameFn, metaPath)
	if old != nil {
		errs = append(errs, apivalidation.ValidateObjectMetaAccessorUpdate(obj, old, metaPath)...)
	}
	return errs
}
