package objects

import (
	"bytes"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// daemonSetResource is apps/v1 daemonsets (the daemonset controller runs
// one pod on every node that should run it, bound to that node).
func daemonSetResource() *Resource {
	return &Resource{
		GroupVersion: appsv1.SchemeGroupVersion, Plural: "daemonsets", Singular: "daemonset", Kind: "DaemonSet", Namespaced: true,
		ShortNames: []string{"ds"}, Categories: []string{"all"}, Subresources: []string{"status"},
		install:    appsv1.AddToScheme,
		newObj:     func() Object { return &appsv1.DaemonSet{} },
		newList:    func() runtime.Object { return &appsv1.DaemonSetList{} },
		defaults:   defaultDaemonSet,
		generation: true,
		validate:   validateDaemonSet,
		columns: append([]metav1.TableColumnDefinition{
			nameCol(),
			col("Desired", "integer", "The total number of nodes that should be running the daemon pod.", 0),
			col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.", 0),
			col("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.", 0),
			col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod", 0),
			col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)", 0),
			col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node.", 0),
			ageCol(),
		}, templateColumns("A label query over pods that are managed by the daemon set.")...),
		cells: func(o Object, now time.Time) []any {
			ds := o.(*appsv1.DaemonSet)
			st := ds.Status
			return append([]any{ds.Name, int64(st.DesiredNumberScheduled), int64(st.CurrentNumberScheduled), int64(st.NumberReady),
				int64(st.UpdatedNumberScheduled), int64(st.NumberAvailable), orNone(labels.Set(ds.Spec.Template.Spec.NodeSelector).String()), age(o, now)},
				templateCells(&ds.Spec.Template.Spec, ds.Spec.Selector)...)
		},
		controls: true,
	}
}

// defaultDaemonSet applies kube-apiserver's DaemonSet defaults.
func defaultDaemonSet(o Object) {
	s := &o.(*appsv1.DaemonSet).Spec
	if s.UpdateStrategy.Type == "" {
		s.UpdateStrategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
	}
	if s.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if s.UpdateStrategy.RollingUpdate == nil {
			s.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
		}
		ru := s.UpdateStrategy.RollingUpdate
		if ru.MaxUnavailable == nil {
			ru.MaxUnavailable = new(intstr.FromInt32(1))
		}
		if ru.MaxSurge == nil {
			ru.MaxSurge = new(intstr.FromInt32(0))
		}
	}
	if s.RevisionHistoryLimit == nil {
		s.RevisionHistoryLimit = new(int32(10))
	}
	defaultPodSpec(&s.Template.Spec)
}

func validateDaemonSet(obj, old Object) field.ErrorList {
	ds := obj.(*appsv1.DaemonSet)
	spec := field.NewPath("spec")
	errs := validateMeta(obj, old, true, apivalidation.NameIsDNSSubdomain)
	errs = append(errs, validateTemplate(ds.Spec.Selector, &ds.Spec.Template, spec)...)
	if p := ds.Spec.Template.Spec.RestartPolicy; p != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(spec.Child("template", "spec", "restartPolicy"), p, []string{string(corev1.RestartPolicyAlways)}))
	}
	if ds.Spec.MinReadySeconds < 0 {
		errs = append(errs, field.Invalid(spec.Child("minReadySeconds"), ds.Spec.MinReadySeconds, "must be greater than or equal to 0"))
	}
	if n := ds.Spec.RevisionHistoryLimit; n != nil && *n < 0 {
		errs = append(errs, field.Invalid(spec.Child("revisionHistoryLimit"), *n, "must be greater than or equal to 0"))
	}
	us := spec.Child("updateStrategy")
	switch ds.Spec.UpdateStrategy.Type {
	case appsv1.OnDeleteDaemonSetStrategyType:
		if ds.Spec.UpdateStrategy.RollingUpdate != nil {
			errs = append(errs, field.Forbidden(us.Child("rollingUpdate"), "may not be specified when strategy `type` is 'OnDelete'"))
		}
	case appsv1.RollingUpdateDaemonSetStrategyType:
		ru := ds.Spec.UpdateStrategy.RollingUpdate
		rp := us.Child("rollingUpdate")
		unavail, err1 := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, 100, true)
		surge, err2 := intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, 100, true)
		if err1 != nil || unavail < 0 {
			errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), ru.MaxUnavailable.String(), "must be a non-negative integer or percentage"))
		}
		if err2 != nil || surge < 0 {
			errs = append(errs, field.Invalid(rp.Child("maxSurge"), ru.MaxSurge.String(), "must be a non-negative integer or percentage"))
		}
		if err1 == nil && err2 == nil && unavail == 0 && surge == 0 {
			errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), ru.MaxUnavailable.String(), "may not be 0 when `maxSurge` is 0"))
		}
	default:
		errs = append(errs, field.NotSupported(us.Child("type"), ds.Spec.UpdateStrategy.Type, []string{"OnDelete", "RollingUpdate"}))
	}
	if old != nil && !equality.Semantic.DeepEqual(ds.Spec.Selector, old.(*appsv1.DaemonSet).Spec.Selector) {
		errs = append(errs, field.Invalid(spec.Child("selector"), ds.Spec.Selector, "field is immutable"))
	}
	return errs
}

// controllerRevisionResource is apps/v1 controllerrevisions: the DaemonSet
// controller's record of each pod template, which `kubectl rollout
// history|undo` reads.
func controllerRevisionResource() *Resource {
	return &Resource{
		GroupVersion: appsv1.SchemeGroupVersion, Plural: "controllerrevisions", Singular: "controllerrevision", Kind: "ControllerRevision", Namespaced: true,
		install: appsv1.AddToScheme,
		newObj:  func() Object { return &appsv1.ControllerRevision{} },
		newList: func() runtime.Object { return &appsv1.ControllerRevisionList{} },
		validate: func(obj, old Object) field.ErrorList {
			cr := obj.(*appsv1.ControllerRevision)
			errs := validateMeta(obj, old, true, apivalidation.NameIsDNSSubdomain)
			if cr.Revision < 0 {
				errs = append(errs, field.Invalid(field.NewPath("revision"), cr.Revision, "must be greater than or equal to 0"))
			}
			if old != nil && !bytes.Equal(cr.Data.Raw, old.(*appsv1.ControllerRevision).Data.Raw) {
				errs = append(errs, field.Invalid(field.NewPath("data"), "", "field is immutable"))
			}
			return errs
		},
		columns: []metav1.TableColumnDefinition{
			nameCol(),
			col("Controller", "string", "Controller of the object", 0),
			col("Revision", "integer", "Revision of the ControllerRevision", 0),
			ageCol(),
		},
		cells: func(o Object, now time.Time) []any {
			cr := o.(*appsv1.ControllerRevision)
			ctrl := "<none>"
			if ref := metav1.GetControllerOf(cr); ref != nil {
				kind := strings.ToLower(ref.Kind)
				if group, _, ok := strings.Cut(ref.APIVersion, "/"); ok {
					kind += "." + group
				}
				ctrl = kind + "/" + ref.Name
			}
			return []any{cr.Name, ctrl, cr.Revision, age(o, now)}
		},
	}
}
