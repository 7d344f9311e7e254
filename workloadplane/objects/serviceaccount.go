package objects

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// DefaultServiceAccount is the ServiceAccount every namespace has and pods
// run as unless they name another.
const DefaultServiceAccount = "default"

// serviceAccountResource is core/v1 serviceaccounts. The controllers create
// the "default" one in every namespace.
func serviceAccountResource() *Resource {
	return &Resource{
		GroupVersion: corev1.SchemeGroupVersion, Plural: "serviceaccounts", Singular: "serviceaccount", Kind: "ServiceAccount", Namespaced: true,
		ShortNames: []string{"sa"},
		install:    corev1.AddToScheme,
		newObj:     func() Object { return &corev1.ServiceAccount{} },
		newList:    func() runtime.Object { return &corev1.ServiceAccountList{} },
		validate: func(obj, old Object) field.ErrorList {
			return validateMeta(obj, old, true, apivalidation.NameIsDNSSubdomain)
		},
		columns: []metav1.TableColumnDefinition{
			nameCol(),
			col("Secrets", "string", "The number of secrets associated with the service account.", 0),
			ageCol(),
		},
		cells: func(o Object, now time.Time) []any {
			sa := o.(*corev1.ServiceAccount)
			return []any{sa.Name, int64(len(sa.Secrets)), age(o, now)}
		},
	}
}
