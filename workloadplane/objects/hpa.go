package objects

import (
	"fmt"
	"strings"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// hpaResource is autoscaling/v2 horizontalpodautoscalers (the autoscaler
// controller scales their targets from the pods' resource metrics).
func hpaResource() *Resource {
	return &Resource{
		GroupVersion: autoscalingv2.SchemeGroupVersion, Plural: "horizontalpodautoscalers", Singular: "horizontalpodautoscaler",
		Kind: "HorizontalPodAutoscaler", Namespaced: true,
		ShortNames: []string{"hpa"}, Categories: []string{"all"}, Subresources: []string{"status"},
		install:    autoscalingv2.AddToScheme,
		newObj:     func() Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
		newList:    func() runtime.Object { return &autoscalingv2.HorizontalPodAutoscalerList{} },
		generation: true,
		defaults:   func(o Object) { DefaultHPA(o.(*autoscalingv2.HorizontalPodAutoscaler)) },
		validate:   validateHPA,
		columns: []metav1.TableColumnDefinition{
			nameCol(),
			col("Reference", "string", "The scale target of the autoscaler.", 0),
			col("Targets", "string", "The current and target values of the metrics.", 0),
			col("MinPods", "string", "The lower limit of replicas.", 0),
			col("MaxPods", "integer", "The upper limit of replicas.", 0),
			col("Replicas", "integer", "The current number of replicas.", 0),
			ageCol(),
		},
		cells: func(o Object, now time.Time) []any {
			h := o.(*autoscalingv2.HorizontalPodAutoscaler)
			minPods := "<unset>"
			if h.Spec.MinReplicas != nil {
				minPods = fmt.Sprint(*h.Spec.MinReplicas)
			}
			ref := h.Spec.ScaleTargetRef
			return []any{h.Name, ref.Kind + "/" + ref.Name, hpaTargets(h), minPods, int64(h.Spec.MaxReplicas), int64(h.Status.CurrentReplicas), age(o, now)}
		},
	}
}

// DefaultHPA applies autoscaling/v2's defaults: one replica at least, 80%
// average CPU utilization when no metric is given, and Kubernetes' scaling
// rules for a behavior that leaves them out.
func DefaultHPA(h *autoscalingv2.HorizontalPodAutoscaler) {
	if h.Spec.MinReplicas == nil {
		h.Spec.MinReplicas = ptr.To[int32](1)
	}
	if len(h.Spec.Metrics) == 0 {
		h.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
			Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)},
		}}}
	}
	if b := h.Spec.Behavior; b != nil {
		b.ScaleUp = defaultScalingRules(b.ScaleUp, ScaleUpRules())
		b.ScaleDown = defaultScalingRules(b.ScaleDown, ScaleDownRules())
	}
}

// ScaleUpRules are Kubernetes' default scale-up rules: no stabilization,
// and at most the larger of doubling or four more pods every 15 seconds.
func ScaleUpRules() *autoscalingv2.HPAScalingRules {
	return &autoscalingv2.HPAScalingRules{
		StabilizationWindowSeconds: ptr.To[int32](0), SelectPolicy: ptr.To(autoscalingv2.MaxChangePolicySelect),
		Policies: []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		},
	}
}

// ScaleDownRules are Kubernetes' default scale-down rules: the highest
// recommendation of the last five minutes, any number of pods at once.
func ScaleDownRules() *autoscalingv2.HPAScalingRules {
	return &autoscalingv2.HPAScalingRules{
		StabilizationWindowSeconds: ptr.To[int32](300), SelectPolicy: ptr.To(autoscalingv2.MaxChangePolicySelect),
		Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}},
	}
}

func defaultScalingRules(r, def *autoscalingv2.HPAScalingRules) *autoscalingv2.HPAScalingRules {
	if r == nil {
		return def
	}
	if r.StabilizationWindowSeconds == nil {
		r.StabilizationWindowSeconds = def.StabilizationWindowSeconds
	}
	if r.SelectPolicy == nil {
		r.SelectPolicy = def.SelectPolicy
	}
	if len(r.Policies) == 0 {
		r.Policies = def.Policies
	}
	return r
}

func validateHPA(obj, old Object) field.ErrorList {
	h := obj.(*autoscalingv2.HorizontalPodAutoscaler)
	spec := field.NewPath("spec")
	errs := validateMeta(obj, old, true, apivalidation.NameIsDNSSubdomain)
	ref, refPath := h.Spec.ScaleTargetRef, spec.Child("scaleTargetRef")
	if ref.Kind == "" {
		errs = append(errs, field.Required(refPath.Child("kind"), ""))
	}
	if ref.Name == "" {
		errs = append(errs, field.Required(refPath.Child("name"), ""))
	} else {
		for _, msg := range content.IsPathSegmentName(ref.Name) {
			errs = append(errs, field.Invalid(refPath.Child("name"), ref.Name, msg))
		}
	}
	if _, err := schema.ParseGroupVersion(ref.APIVersion); err != nil {
		errs = append(errs, field.Invalid(refPath.Child("apiVersion"), ref.APIVersion, err.Error()))
	}
	if m := h.Spec.MinReplicas; m != nil && *m < 1 {
		errs = append(errs, field.Invalid(spec.Child("minReplicas"), *m, "must be greater than or equal to 1"))
	}
	if h.Spec.MaxReplicas < 1 {
		errs = append(errs, field.Invalid(spec.Child("maxReplicas"), h.Spec.MaxReplicas, "must be greater than 0"))
	} else if m := h.Spec.MinReplicas; m != nil && h.Spec.MaxReplicas < *m {
		errs = append(errs, field.Invalid(spec.Child("maxReplicas"), h.Spec.MaxReplicas, "must be greater than or equal to `minReplicas`"))
	}
	for i, m := range h.Spec.Metrics {
		errs = append(errs, validateMetricSpec(m, spec.Child("metrics").Index(i))...)
	}
	if b := h.Spec.Behavior; b != nil {
		errs = append(errs, validateScalingRules(b.ScaleUp, spec.Child("behavior", "scaleUp"))...)
		errs = append(errs, validateScalingRules(b.ScaleDown, spec.Child("behavior", "scaleDown"))...)
	}
	return errs
}

func validateMetricSpec(m autoscalingv2.MetricSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	sources := []struct {
		typ autoscalingv2.MetricSourceType
		set bool
	}{
		{autoscalingv2.ContainerResourceMetricSourceType, m.ContainerResource != nil}, {autoscalingv2.ExternalMetricSourceType, m.External != nil},
		{autoscalingv2.ObjectMetricSourceType, m.Object != nil}, {autoscalingv2.PodsMetricSourceType, m.Pods != nil},
		{autoscalingv2.ResourceMetricSourceType, m.Resource != nil},
	}
	member := func(typ autoscalingv2.MetricSourceType) string {
		return strings.ToLower(string(typ[:1])) + string(typ[1:])
	}
	known, populated := false, false
	for _, src := range sources {
		if src.set && src.typ != m.Type {
			errs = append(errs, field.Forbidden(p.Child(member(src.typ)), "must populate the given metric source only"))
		}
		if src.typ == m.Type {
			known, populated = true, src.set
		}
	}
	switch {
	case m.Type == "":
		return append(errs, field.Required(p.Child("type"), "must specify a metric source type"))
	case !known:
		return append(errs, field.NotSupported(p.Child("type"), m.Type, []string{"ContainerResource", "External", "Object", "Pods", "Resource"}))
	case !populated:
		return append(errs, field.Required(p.Child(member(m.Type)), "must populate information for the given metric source"))
	}
	switch {
	case m.Resource != nil:
		if m.Resource.Name == "" {
			errs = append(errs, field.Required(p.Child("resource", "name"), "must specify a resource name"))
		}
		errs = append(errs, validateMetricTarget(m.Resource.Target, true, p.Child("resource", "target"))...)
	case m.ContainerResource != nil:
		if m.ContainerResource.Name == "" {
			errs = append(errs, field.Required(p.Child("containerResource", "name"), "must specify a resource name"))
		}
		if m.ContainerResource.Container == "" {
			errs = append(errs, field.Required(p.Child("containerResource", "container"), "must specify a container"))
		}
		errs = append(errs, validateMetricTarget(m.ContainerResource.Target, true, p.Child("containerResource", "target"))...)
	case m.Pods != nil:
		errs = append(errs, validateMetricTarget(m.Pods.Target, false, p.Child("pods", "target"))...)
	case m.Object != nil:
		errs = append(errs, validateMetricTarget(m.Object.Target, false, p.Child("object", "target"))...)
	case m.External != nil:
		errs = append(errs, validateMetricTarget(m.External.Target, false, p.Child("external", "target"))...)
	}
	return errs
}

func validateMetricTarget(t autoscalingv2.MetricTarget, utilization bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch t.Type {
	case autoscalingv2.UtilizationMetricType:
		if !utilization {
			errs = append(errs, field.Invalid(p.Child("type"), t.Type, "utilization targets are only supported for resource metrics"))
		}
		if t.AverageUtilization == nil {
			errs = append(errs, field.Required(p.Child("averageUtilization"), "must set averageUtilization for a Utilization target"))
		} else if *t.AverageUtilization < 1 {
			errs = append(errs, field.Invalid(p.Child("averageUtilization"), *t.AverageUtilization, "must be greater than 0"))
		}
	case autoscalingv2.AverageValueMetricType:
		if t.AverageValue == nil {
			errs = append(errs, field.Required(p.Child("averageValue"), "must set averageValue for an AverageValue target"))
		} else if t.AverageValue.Sign() <= 0 {
			errs = append(errs, field.Invalid(p.Child("averageValue"), t.AverageValue.String(), "must be positive"))
		}
	case autoscalingv2.ValueMetricType:
		if utilization {
			errs = append(errs, field.Invalid(p.Child("type"), t.Type, "resource metrics take Utilization or AverageValue targets"))
		}
		if t.Value == nil {
			errs = append(errs, field.Required(p.Child("value"), "must set value for a Value target"))
		} else if t.Value.Sign() <= 0 {
			errs = append(errs, field.Invalid(p.Child("value"), t.Value.String(), "must be positive"))
		}
	case "":
		errs = append(errs, field.Required(p.Child("type"), "must specify a metric target type"))
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), t.Type, []string{"AverageValue", "Utilization", "Value"}))
	}
	return errs
}

func validateScalingRules(r *autoscalingv2.HPAScalingRules, p *field.Path) field.ErrorList {
	if r == nil {
		return nil
	}
	var errs field.ErrorList
	if w := r.StabilizationWindowSeconds; w != nil && (*w < 0 || *w > 3600) {
		errs = append(errs, field.Invalid(p.Child("stabilizationWindowSeconds"), *w, "must be between 0 and 3600 seconds"))
	}
	if s := r.SelectPolicy; s != nil && *s != autoscalingv2.MaxChangePolicySelect && *s != autoscalingv2.MinChangePolicySelect && *s != autoscalingv2.DisabledPolicySelect {
		errs = append(errs, field.NotSupported(p.Child("selectPolicy"), *s, []string{"Disabled", "Max", "Min"}))
	}
	if len(r.Policies) == 0 {
		errs = append(errs, field.Required(p.Child("policies"), "must specify at least one Policy"))
	}
	for i, pol := range r.Policies {
		pp := p.Child("policies").Index(i)
		if pol.Type != autoscalingv2.PodsScalingPolicy && pol.Type != autoscalingv2.PercentScalingPolicy {
			errs = append(errs, field.NotSupported(pp.Child("type"), pol.Type, []string{"Percent", "Pods"}))
		}
		if pol.Value <= 0 {
			errs = append(errs, field.Invalid(pp.Child("value"), pol.Value, "must be greater than zero"))
		}
		if pol.PeriodSeconds <= 0 || pol.PeriodSeconds > 1800 {
			errs = append(errs, field.Invalid(pp.Child("periodSeconds"), pol.PeriodSeconds, "must be greater than zero and less than or equal to 1800"))
		}
	}
	return errs
}

// hpaTargets is the Targets column: each metric's current value against
// its target, as kubectl prints them ("cpu: 12%/50%").
func hpaTargets(h *autoscalingv2.HorizontalPodAutoscaler) string {
	var parts []string
	for i, m := range h.Spec.Metrics {
		if i == 2 {
			parts = append(parts, fmt.Sprintf("+ %d more...", len(h.Spec.Metrics)-2))
			break
		}
		var cur *autoscalingv2.MetricStatus
		if i < len(h.Status.CurrentMetrics) && h.Status.CurrentMetrics[i].Type == m.Type {
			cur = &h.Status.CurrentMetrics[i]
		}
		parts = append(parts, metricTarget(m, cur))
	}
	if len(parts) == 0 {
		return "<none>"
	}
	return strings.Join(parts, ", ")
}

func metricTarget(m autoscalingv2.MetricSpec, cur *autoscalingv2.MetricStatus) string {
	current := "<unknown>"
	var name string
	var target autoscalingv2.MetricTarget
	var value *autoscalingv2.MetricValueStatus
	switch {
	case m.Resource != nil:
		name, target = string(m.Resource.Name), m.Resource.Target
		if cur != nil && cur.Resource != nil {
			value = &cur.Resource.Current
		}
	case m.ContainerResource != nil:
		name, target = m.ContainerResource.Container+"/"+string(m.ContainerResource.Name), m.ContainerResource.Target
		if cur != nil && cur.ContainerResource != nil {
			value = &cur.ContainerResource.Current
		}
	case m.Pods != nil:
		name, target = m.Pods.Metric.Name, m.Pods.Target
	case m.Object != nil:
		name, target = m.Object.Metric.Name, m.Object.Target
	case m.External != nil:
		name, target = m.External.Metric.Name, m.External.Target
	}
	want := "<unset>"
	switch {
	case target.AverageUtilization != nil:
		want = fmt.Sprintf("%d%%", *target.AverageUtilization)
		if value != nil && value.AverageUtilization != nil {
			current = fmt.Sprintf("%d%%", *value.AverageUtilization)
		}
	case target.AverageValue != nil:
		want = target.AverageValue.String()
		if value != nil && value.AverageValue != nil {
			current = value.AverageValue.String()
		}
	case target.Value != nil:
		want = target.Value.String()
	}
	return fmt.Sprintf("%s: %s/%s", name, current, want)
}
