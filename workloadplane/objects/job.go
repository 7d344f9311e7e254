package objects

import (
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Labels and the annotation the Job controller puts on its pods, as
// Kubernetes names them.
const (
	JobNameLabel       = batchv1.JobNameLabel
	JobControllerUID   = batchv1.ControllerUidLabel
	JobCompletionIndex = batchv1.JobCompletionIndexAnnotation
)

// jobResource is batch/v1 jobs (the job controller runs their pods).
func jobResource() *Resource {
	return &Resource{
		GroupVersion: batchv1.SchemeGroupVersion, Plural: "jobs", Singular: "job", Kind: "Job", Namespaced: true,
		Categories: []string{"all"}, Subresources: []string{"status"},
		install: batchv1.AddToScheme,
		newObj:  func() Object { return &batchv1.Job{} },
		newList: func() runtime.Object { return &batchv1.JobList{} },
		fields: func(o Object) fields.Set {
			return fields.Set{"status.successful": fmt.Sprint(o.(*batchv1.Job).Status.Succeeded)}
		},
		defaults:   defaultJob,
		generation: true,
		validate:   validateJob,
		columns: append([]metav1.TableColumnDefinition{
			nameCol(),
			col("Status", "string", "Status of the job.", 0),
			col("Completions", "string", "The completed job pods and the desired ones.", 0),
			col("Duration", "string", "Time required to complete the job.", 0),
			ageCol(),
		}, templateColumns("Label selector for pods.")...),
		cells: func(o Object, now time.Time) []any {
			j := o.(*batchv1.Job)
			completions := fmt.Sprintf("%d/1 of %d", j.Status.Succeeded, ptrOr(j.Spec.Parallelism, 1))
			if j.Spec.Completions != nil {
				completions = fmt.Sprintf("%d/%d", j.Status.Succeeded, *j.Spec.Completions)
			}
			duration := ""
			switch {
			case j.Status.StartTime != nil && j.Status.CompletionTime != nil:
				duration = since(j.Status.StartTime.Time, j.Status.CompletionTime.Time)
			case j.Status.StartTime != nil:
				duration = since(j.Status.StartTime.Time, now)
			}
			return append([]any{j.Name, JobStatus(j), completions, duration, age(o, now)}, templateCells(&j.Spec.Template.Spec, j.Spec.Selector)...)
		},
		controls: true,
	}
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// JobCondition returns whether j has condition t with status True.
func JobCondition(j *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// JobStatus is the STATUS column of `kubectl get jobs`.
func JobStatus(j *batchv1.Job) string {
	switch {
	case JobCondition(j, batchv1.JobComplete):
		return "Complete"
	case JobCondition(j, batchv1.JobFailed):
		return "Failed"
	case j.Spec.Suspend != nil && *j.Spec.Suspend:
		return "Suspended"
	}
	return "Running"
}

// defaultJob applies kube-apiserver's Job defaults, and the selector and
// pod labels the Job controller generates unless spec.manualSelector.
func defaultJob(o Object) {
	j := o.(*batchv1.Job)
	s := &j.Spec
	if s.Completions == nil && s.Parallelism == nil {
		s.Completions = new(int32(1))
	}
	if s.Parallelism == nil {
		s.Parallelism = new(int32(1))
	}
	if s.BackoffLimit == nil {
		s.BackoffLimit = new(int32(6))
	}
	if s.CompletionMode == nil {
		s.CompletionMode = new(batchv1.NonIndexedCompletion)
	}
	if s.Suspend == nil {
		s.Suspend = new(false)
	}
	if s.ManualSelector == nil || !*s.ManualSelector {
		if s.Selector == nil {
			s.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{JobControllerUID: string(j.UID)}}
		}
		if s.Template.Labels == nil {
			s.Template.Labels = map[string]string{}
		}
		s.Template.Labels[JobControllerUID] = string(j.UID)
		s.Template.Labels[JobNameLabel] = j.Name
		s.Template.Labels["controller-uid"] = string(j.UID)
		s.Template.Labels["job-name"] = j.Name
	}
	defaultPodSpec(&s.Template.Spec)
}

// validateJobSpec validates a Job's spec, or a CronJob's template of one.
func validateJobSpec(js *batchv1.JobSpec, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, f := range []struct {
		name string
		v    *int32
	}{{"parallelism", js.Parallelism}, {"completions", js.Completions}, {"backoffLimit", js.BackoffLimit}} {
		if f.v != nil && *f.v < 0 {
			errs = append(errs, field.Invalid(spec.Child(f.name), *f.v, "must be greater than or equal to 0"))
		}
	}
	if d := js.ActiveDeadlineSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(spec.Child("activeDeadlineSeconds"), *d, "must be greater than 0"))
	}
	if t := js.TTLSecondsAfterFinished; t != nil && *t < 0 {
		errs = append(errs, field.Invalid(spec.Child("ttlSecondsAfterFinished"), *t, "must be greater than or equal to 0"))
	}
	switch m := ptrOr(js.CompletionMode, batchv1.NonIndexedCompletion); m {
	case batchv1.NonIndexedCompletion:
	case batchv1.IndexedCompletion:
		if js.Completions == nil {
			errs = append(errs, field.Required(spec.Child("completions"), fmt.Sprintf("when completion mode is %s", m)))
		}
	default:
		errs = append(errs, field.NotSupported(spec.Child("completionMode"), m, []string{"NonIndexed", "Indexed"}))
	}
	if js.PodFailurePolicy != nil {
		errs = append(errs, field.Forbidden(spec.Child("podFailurePolicy"), "pod failure policies are not supported by Mycel yet"))
	}
	if js.SuccessPolicy != nil {
		errs = append(errs, field.Forbidden(spec.Child("successPolicy"), "success policies are not supported by Mycel yet"))
	}
	if rp := js.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever {
		errs = append(errs, field.NotSupported(spec.Child("template", "spec", "restartPolicy"), rp, []string{"OnFailure", "Never"}))
	}
	if js.Selector == nil && !ptrOr(js.ManualSelector, false) {
		// a CronJob's template: the Job made from it gets the selector
		errs = append(errs, validatePodTemplate(&js.Template, spec)...)
	} else {
		errs = append(errs, validateTemplate(js.Selector, &js.Template, spec)...)
	}
	return errs
}

func validateJob(obj, old Object) field.ErrorList {
	j := obj.(*batchv1.Job)
	spec := field.NewPath("spec")
	errs := validateMeta(obj, old, true, apivalidation.NameIsDNSLabel)
	errs = append(errs, validateJobSpec(&j.Spec, spec)...)
	if old != nil {
		o := old.(*batchv1.Job)
		for _, f := range []struct {
			name     string
			now, was any
		}{{"selector", j.Spec.Selector, o.Spec.Selector}, {"template", j.Spec.Template, o.Spec.Template},
			{"completions", j.Spec.Completions, o.Spec.Completions}, {"completionMode", j.Spec.CompletionMode, o.Spec.CompletionMode}} {
			if !equality.Semantic.DeepEqual(f.now, f.was) {
				errs = append(errs, field.Invalid(spec.Child(f.name), "", apivalidation.FieldImmutableErrorMsg))
			}
		}
	}
	return errs
}
