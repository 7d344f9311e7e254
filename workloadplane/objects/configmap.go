package objects

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// MaxDataSize bounds the data of one ConfigMap or Secret, as in Kubernetes
// (1 MiB): they are replicated to every node and kept in memory by every
// informer.
const MaxDataSize = 1 << 20

// configMapResource is core/v1 configmaps.
func configMapResource() *Resource {
	return &Resource{
		GroupVersion: corev1.SchemeGroupVersion, Plural: "configmaps", Singular: "configmap", Kind: "ConfigMap", Namespaced: true,
		ShortNames: []string{"cm"},
		install:    corev1.AddToScheme,
		newObj:     func() Object { return &corev1.ConfigMap{} },
		newList:    func() runtime.Object { return &corev1.ConfigMapList{} },
		validate:   validateConfigMap,
		columns:    []metav1.TableColumnDefinition{nameCol(), col("Data", "integer", "Number of keys in the config map.", 0), ageCol()},
		cells: func(o Object, now time.Time) []any {
			cm := o.(*corev1.ConfigMap)
			return []any{cm.Name, int64(len(cm.Data) + len(cm.BinaryData)), age(o, now)}
		},
	}
}

func validateConfigMap(obj, old Object) field.ErrorList {
	cm := obj.(*corev1.ConfigMap)
	errs := validateMeta(obj, old, true, apivalidation.NameIsDNSSubdomain)
	size := 0
	for k, v := range cm.Data {
		errs = append(errs, validateDataKey(field.NewPath("data").Key(k), k)...)
		if _, ok := cm.BinaryData[k]; ok {
			errs = append(errs, field.Invalid(field.NewPath("data").Key(k), k, "duplicate of key present in binaryData"))
		}
		size += len(v)
	}
	for k, v := range cm.BinaryData {
		errs = append(errs, validateDataKey(field.NewPath("binaryData").Key(k), k)...)
		size += len(v)
	}
	if size > MaxDataSize {
		errs = append(errs, field.TooLong(field.NewPath(""), "", MaxDataSize))
	}
	if old != nil {
		errs = append(errs, validateImmutableData(old.(*corev1.ConfigMap).Immutable, cm.Immutable,
			equality.Semantic.DeepEqual(cm.Data, old.(*corev1.ConfigMap).Data) && equality.Semantic.DeepEqual(cm.BinaryData, old.(*corev1.ConfigMap).BinaryData))...)
	}
	return errs
}

// validateDataKey checks a ConfigMap or Secret key: a file name that can be
// mounted and an environment variable that can be taken from it.
func validateDataKey(path *field.Path, key string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsConfigMapKey(key) {
		errs = append(errs, field.Invalid(path, key, msg))
	}
	return errs
}

// validateImmutableData enforces `immutable: true` on a ConfigMap or Secret
// update, with Kubernetes' messages: once set it stays, and the data is
// frozen (metadata may still change).
func validateImmutableData(wasImmutable, isImmutable *bool, sameData bool) field.ErrorList {
	if wasImmutable == nil || !*wasImmutable {
		return nil
	}
	var errs field.ErrorList
	if isImmutable == nil || !*isImmutable {
		errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
	}
	if !sameData {
		errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
	}
	return errs
}
