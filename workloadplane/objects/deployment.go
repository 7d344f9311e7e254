package objects

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// deploymentResource is apps/v1 deployments (the deployment controller
// rolls them out through ReplicaSets).
func deploymentResource() *Resource {
	return &Resource{
		GroupVersion: appsv1.SchemeGroupVersion, Plural: "deployments", Singular: "deployment", Kind: "Deployment", Namespaced: true,
		ShortNames: []string{"deploy"}, Categories: []string{"all"}, Subresources: []string{"status", "scale"},
		install:    appsv1.AddToScheme,
		newObj:     func() Object { return &appsv1.Deployment{} },
		newList:    func() runtime.Object { return &appsv1.DeploymentList{} },
		defaults:   func(o Object) { defaultDeployment(o.(*appsv1.Deployment)) },
		generation: true,
		validate:   validateDeployment,
		columns: append([]metav1.TableColumnDefinition{
			nameCol(),
			col("Ready", "string", "Number of the pod with ready state", 0),
			col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec.", 0),
			col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.", 0),
			ageCol(),
		}, templateColumns("Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.")...),
		cells: func(o Object, now time.Time) []any {
			d := o.(*appsv1.Deployment)
			return append([]any{d.Name, fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, *d.Spec.Replicas), int64(d.Status.UpdatedReplicas),
				int64(d.Status.AvailableReplicas), age(o, now)}, templateCells(&d.Spec.Template.Spec, d.Spec.Selector)...)
		},
		scale: &scaling{
			get: func(o Object) (int32, int32, *metav1.LabelSelector) {
				d := o.(*appsv1.Deployment)
				return *d.Spec.Replicas, d.Status.Replicas, d.Spec.Selector
			},
			set: func(o Object, n int32) { o.(*appsv1.Deployment).Spec.Replicas = &n },
		},
		controls: true,
	}
}

func defaultDeployment(d *appsv1.Deployment) {
	if d.Spec.Replicas == nil {
		d.Spec.Replicas = new(int32(1))
	}
	if d.Spec.Strategy.Type == "" {
		d.Spec.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if d.Spec.Strategy.RollingUpdate == nil {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		pct := intstr.FromString("25%")
		if d.Spec.Strategy.RollingUpdate.MaxUnavailable == nil {
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = &pct
		}
		if d.Spec.Strategy.RollingUpdate.MaxSurge == nil {
			d.Spec.Strategy.RollingUpdate.MaxSurge = &pct
		}
	}
	if d.Spec.RevisionHistoryLimit == nil {
		d.Spec.RevisionHistoryLimit = new(int32(10))
	}
	if d.Spec.ProgressDeadlineSeconds == nil {
		d.Spec.ProgressDeadlineSeconds = new(int32(600))
	}
	defaultPodSpec(&d.Spec.Template.Spec)
}

func validateDeployment(obj, old Object) field.ErrorList {
	d := obj.(*appsv1.Deployment)
	spec := field.NewPath("spec")
	errs := validateMeta(obj, old, true, apivalidation.NameIsDNSSubdomain)
	errs = append(errs, validateReplicas(d.Spec.Replicas, spec.Child("replicas"))...)
	errs = append(errs, validateTemplate(d.Spec.Selector, &d.Spec.Template, spec)...)
	switch d.Spec.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if d.Spec.Strategy.RollingUpdate != nil {
			errs = append(errs, field.Forbidden(spec.Child("strategy", "rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		if *d.Spec.Replicas < 0 {
			break // reported above; percentages of a negative count mean nothing
		}
		ru := d.Spec.Strategy.RollingUpdate
		rp := spec.Child("strategy", "rollingUpdate")
		replicas := int(*d.Spec.Replicas)
		surge, err1 := intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, replicas, true)
		unavail, err2 := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, replicas, false)
		if err1 != nil {
			errs = append(errs, field.Invalid(rp.Child("maxSurge"), ru.MaxSurge.String(), err1.Error()))
		}
		if err2 != nil {
			errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), ru.MaxUnavailable.String(), err2.Error()))
		}
		if err1 == nil && err2 == nil && surge == 0 && unavail == 0 && ru.MaxSurge.IntValue() == 0 && ru.MaxUnavailable.IntValue() == 0 && ru.MaxSurge.Type == intstr.Int && ru.MaxUnavailable.Type == intstr.Int {
			errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), ru.MaxUnavailable.String(), "may not be 0 when `maxSurge` is 0"))
		}
		if surge < 0 {
			errs = append(errs, field.Invalid(rp.Child("maxSurge"), ru.MaxSurge.String(), "must be greater than or equal to 0"))
		}
		if unavail < 0 {
			errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), ru.MaxUnavailable.String(), "must be greater than or equal to 0"))
		}
	default:
		errs = append(errs, field.NotSupported(spec.Child("strategy", "type"), d.Spec.Strategy.Type, []string{"Recreate", "RollingUpdate"}))
	}
	if old != nil {
		od := old.(*appsv1.Deployment)
		if !equality.Semantic.DeepEqual(d.Spec.Selector, od.Spec.Selector) {
			errs = append(errs, field.Invalid(spec.Child("selector"), d.Spec.Selector, "field is immutable"))
		}
	}
	return errs
}
