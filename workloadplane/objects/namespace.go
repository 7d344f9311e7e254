package objects

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// namespaceResource is core/v1 namespaces. Deleting one only marks it
// (phase Terminating): the namespace controller empties it of every
// namespaced resource, then removes it with a zero grace period.
func namespaceResource() *Resource {
	return &Resource{
		GroupVersion: corev1.SchemeGroupVersion, Plural: "namespaces", Singular: "namespace", Kind: "Namespace",
		ShortNames: []string{"ns"}, Subresources: []string{"status"},
		install: corev1.AddToScheme,
		newObj:  func() Object { return &corev1.Namespace{} },
		newList: func() runtime.Object { return &corev1.NamespaceList{} },
		fields: func(o Object) fields.Set {
			return fields.Set{"status.phase": string(o.(*corev1.Namespace).Status.Phase)}
		},
		defaults:   func(o Object) { setLabel(o, corev1.LabelMetadataName, o.GetName()) },
		initStatus: func(o Object) { o.(*corev1.Namespace).Status.Phase = corev1.NamespaceActive },
		validate: func(obj, old Object) field.ErrorList {
			return validateMeta(obj, old, false, apivalidation.NameIsDNSLabel)
		},
		columns: []metav1.TableColumnDefinition{nameCol(), col("Status", "string", "The status of the namespace", 0), ageCol()},
		cells: func(o Object, now time.Time) []any {
			ns := o.(*corev1.Namespace)
			return []any{ns.Name, string(ns.Status.Phase), age(o, now)}
		},
		finishes: true,
		graceful: func(cur Object, opts DeleteOptions) (int64, bool) {
			return 0, !(zeroGrace(opts) && cur.GetDeletionTimestamp() != nil)
		},
	}
}
