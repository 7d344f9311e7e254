package objects

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// CronJobScheduledAnnotation is the annotation of a CronJob's Job naming
// the schedule time it ran for, as Kubernetes names it.
const CronJobScheduledAnnotation = batchv1.CronJobScheduledTimestampAnnotation

// maxCronJobName leaves room in Job and pod names for the suffixes the
// controllers add, as kube-apiserver's limit does.
const maxCronJobName = 52

// cronJobResource is batch/v1 cronjobs (the cronjob controller makes
// their Jobs).
func cronJobResource() *Resource {
	return &Resource{
		GroupVersion: batchv1.SchemeGroupVersion, Plural: "cronjobs", Singular: "cronjob", Kind: "CronJob", Namespaced: true,
		ShortNames: []string{"cj"}, Categories: []string{"all"}, Subresources: []string{"status"},
		install:    batchv1.AddToScheme,
		newObj:     func() Object { return &batchv1.CronJob{} },
		newList:    func() runtime.Object { return &batchv1.CronJobList{} },
		defaults:   defaultCronJob,
		generation: true,
		validate:   validateCronJob,
		columns: append([]metav1.TableColumnDefinition{
			nameCol(),
			col("Schedule", "string", "The schedule in Cron format.", 0),
			col("Timezone", "string", "The time zone the schedule is in.", 0),
			col("Suspend", "boolean", "Whether the CronJob is suspended.", 0),
			col("Active", "integer", "The number of running Jobs.", 0),
			col("Last Schedule", "date", "When the last Job was scheduled.", 0),
			ageCol(),
		}, templateColumns("Label selector for the Jobs' pods.")...),
		cells: func(o Object, now time.Time) []any {
			cj := o.(*batchv1.CronJob)
			tz, last := "<none>", "<none>"
			if cj.Spec.TimeZone != nil {
				tz = *cj.Spec.TimeZone
			}
			if t := cj.Status.LastScheduleTime; t != nil {
				last = since(t.Time, now)
			}
			t := &cj.Spec.JobTemplate.Spec
			return append([]any{cj.Name, cj.Spec.Schedule, tz, ptrOr(cj.Spec.Suspend, false), int64(len(cj.Status.Active)), last, age(o, now)},
				templateCells(&t.Template.Spec, t.Selector)...)
		},
		controls: true,
	}
}

// defaultCronJob applies kube-apiserver's CronJob defaults.
func defaultCronJob(o Object) {
	s := &o.(*batchv1.CronJob).Spec
	if s.ConcurrencyPolicy == "" {
		s.ConcurrencyPolicy = batchv1.AllowConcurrent
	}
	if s.Suspend == nil {
		s.Suspend = new(false)
	}
	if s.SuccessfulJobsHistoryLimit == nil {
		s.SuccessfulJobsHistoryLimit = new(int32(3))
	}
	if s.FailedJobsHistoryLimit == nil {
		s.FailedJobsHistoryLimit = new(int32(1))
	}
	defaultPodSpec(&s.JobTemplate.Spec.Template.Spec)
}

// CronSchedule parses a CronJob's schedule (standard five fields and the @
// macros, as Kubernetes parses them) and returns it with its time zone:
// spec.timeZone, or UTC. Kubernetes uses the controller manager's local
// zone; a fabric's owners may be in different zones, and a time must be
// the same one on whichever owns it.
func CronSchedule(cj *batchv1.CronJob) (cron.Schedule, *time.Location, error) {
	loc := time.UTC
	if tz := cj.Spec.TimeZone; tz != nil {
		l, err := time.LoadLocation(*tz)
		if err != nil {
			return nil, nil, fmt.Errorf("unknown time zone %s", *tz)
		}
		loc = l
	}
	sched, err := cron.ParseStandard(cj.Spec.Schedule)
	if err != nil {
		return nil, nil, err
	}
	return sched, loc, nil
}

func validateCronJob(obj, old Object) field.ErrorList {
	cj := obj.(*batchv1.CronJob)
	spec := field.NewPath("spec")
	errs := validateMeta(obj, old, true, apivalidation.NameIsDNSSubdomain)
	if len(cj.Name) > maxCronJobName {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), cj.Name, fmt.Sprintf("must be no more than %d characters", maxCronJobName)))
	}
	switch {
	case cj.Spec.Schedule == "":
		errs = append(errs, field.Required(spec.Child("schedule"), ""))
	case strings.Contains(cj.Spec.Schedule, "TZ") && cj.Spec.TimeZone != nil:
		errs = append(errs, field.Invalid(spec.Child("schedule"), cj.Spec.Schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
	case strings.Contains(cj.Spec.Schedule, "TZ"):
		errs = append(errs, field.Invalid(spec.Child("schedule"), cj.Spec.Schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
	default:
		if _, err := cron.ParseStandard(cj.Spec.Schedule); err != nil {
			errs = append(errs, field.Invalid(spec.Child("schedule"), cj.Spec.Schedule, err.Error()))
		}
	}
	if tz := cj.Spec.TimeZone; tz != nil {
		if _, err := time.LoadLocation(*tz); err != nil || *tz == "" || strings.EqualFold(*tz, "local") {
			errs = append(errs, field.Invalid(spec.Child("timeZone"), *tz, "unknown time zone "+*tz))
		}
	}
	switch p := cj.Spec.ConcurrencyPolicy; p {
	case batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent:
	default:
		errs = append(errs, field.NotSupported(spec.Child("concurrencyPolicy"), p, []string{"Allow", "Forbid", "Replace"}))
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil && *d < 0 {
		errs = append(errs, field.Invalid(spec.Child("startingDeadlineSeconds"), *d, "must be greater than or equal to 0"))
	}
	for _, f := range []struct {
		name string
		v    *int32
	}{{"successfulJobsHistoryLimit", cj.Spec.SuccessfulJobsHistoryLimit}, {"failedJobsHistoryLimit", cj.Spec.FailedJobsHistoryLimit}} {
		if f.v != nil && *f.v < 0 {
			errs = append(errs, field.Invalid(spec.Child(f.name), *f.v, "must be greater than or equal to 0"))
		}
	}
	t := &cj.Spec.JobTemplate
	tpath := spec.Child("jobTemplate")
	errs = append(errs, apivalidation.ValidateAnnotations(t.Annotations, tpath.Child("metadata", "annotations"))...)
	errs = append(errs, validateJobSpec(&t.Spec, tpath.Child("spec"))...)
	return errs
}
