package objects

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// eventResource is core/v1 events (Record writes them).
func eventResource() *Resource {
	return &Resource{
		GroupVersion: corev1.SchemeGroupVersion, Plural: "events", Singular: "event", Kind: "Event", Namespaced: true,
		ShortNames: []string{"ev"},
		install:    corev1.AddToScheme,
		newObj:     func() Object { return &corev1.Event{} },
		newList:    func() runtime.Object { return &corev1.EventList{} },
		fields: func(o Object) fields.Set {
			e := o.(*corev1.Event)
			return fields.Set{
				"involvedObject.kind":            e.InvolvedObject.Kind,
				"involvedObject.namespace":       e.InvolvedObject.Namespace,
				"involvedObject.name":            e.InvolvedObject.Name,
				"involvedObject.uid":             string(e.InvolvedObject.UID),
				"involvedObject.apiVersion":      e.InvolvedObject.APIVersion,
				"involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
				"involvedObject.fieldPath":       e.InvolvedObject.FieldPath,
				"reason":                         e.Reason,
				"reportingComponent":             e.ReportingController,
				"source":                         e.Source.Component,
				"type":                           e.Type,
			}
		},
		validate: func(obj, old Object) field.ErrorList {
			e := obj.(*corev1.Event)
			errs := validateMeta(obj, old, true, apivalidation.NameIsDNSSubdomain)
			if e.InvolvedObject.Namespace != "" && e.InvolvedObject.Namespace != e.Namespace {
				errs = append(errs, field.Invalid(field.NewPath("involvedObject", "namespace"), e.InvolvedObject.Namespace, "does not match event.namespace"))
			}
			return errs
		},
		columns: []metav1.TableColumnDefinition{
			col("Last Seen", "string", "Time since the event was last seen.", 0),
			col("Type", "string", "Type of the event.", 0),
			col("Reason", "string", "Short, machine understandable string.", 0),
			col("Object", "string", "The object this event is about.", 0),
			col("Message", "string", "A human-readable description.", 0),
			col("Source", "string", "The component reporting this event.", 1),
			col("Count", "integer", "The number of times this event has occurred.", 1),
			nameCol(),
		},
		cells: func(o Object, now time.Time) []any {
			e := o.(*corev1.Event)
			last := e.LastTimestamp.Time
			if last.IsZero() {
				last = e.EventTime.Time
			}
			obj := strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
			return []any{since(last, now), e.Type, e.Reason, obj, strings.TrimSpace(e.Message), e.Source.Component, int64(e.Count), e.Name}
		},
	}
}
