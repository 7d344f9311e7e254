package objects

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// replicaSetResource is apps/v1 replicasets (the replicaset controller keeps
// their pods; the owner of their workload places them).
func replicaSetResource() *Resource {
	return &Resource{
		GroupVersion: appsv1.SchemeGroupVersion, Plural: "replicasets", Singular: "replicaset", Kind: "ReplicaSet", Namespaced: true,
		ShortNames: []string{"rs"}, Categories: []string{"all"}, Subresources: []string{"status", "scale"},
		install: appsv1.AddToScheme,
		newObj:  func() Object { return &appsv1.ReplicaSet{} },
		newList: func() runtime.Object { return &appsv1.ReplicaSetList{} },
		defaults: func(o Object) {
			rs := o.(*appsv1.ReplicaSet)
			if rs.Spec.Replicas == nil {
				rs.Spec.Replicas = new(int32(1))
			}
			defaultPodSpec(&rs.Spec.Template.Spec)
		},
		generation: true,
		validate: func(obj, old Object) field.ErrorList {
			rs := obj.(*appsv1.ReplicaSet)
			spec := field.NewPath("spec")
			errs := validateMeta(obj, old, true, apivalidation.NameIsDNSSubdomain)
			errs = append(errs, validateReplicas(rs.Spec.Replicas, spec.Child("replicas"))...)
			return append(errs, validateTemplate(rs.Spec.Selector, &rs.Spec.Template, spec)...)
		},
		columns: append([]metav1.TableColumnDefinition{
			nameCol(),
			col("Desired", "integer", "Number of desired pods.", 0),
			col("Current", "integer", "Number of actual replicas.", 0),
			col("Ready", "integer", "The number of ready replicas for this replica set.", 0),
			ageCol(),
		}, templateColumns("Label selector for pods.")...),
		cells: func(o Object, now time.Time) []any {
			rs := o.(*appsv1.ReplicaSet)
			return append([]any{rs.Name, int64(*rs.Spec.Replicas), int64(rs.Status.Replicas), int64(rs.Status.ReadyReplicas),
				age(o, now)}, templateCells(&rs.Spec.Template.Spec, rs.Spec.Selector)...)
		},
		scale: &scaling{
			get: func(o Object) (int32, int32, *metav1.LabelSelector) {
				rs := o.(*appsv1.ReplicaSet)
				return *rs.Spec.Replicas, rs.Status.Replicas, rs.Spec.Selector
			},
			set: func(o Object, n int32) { o.(*appsv1.ReplicaSet).Spec.Replicas = &n },
		},
		controls: true,
	}
}
