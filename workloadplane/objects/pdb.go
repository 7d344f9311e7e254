package objects

import (
	"time"

	policyv1 "k8s.io/api/policy/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// podDisruptionBudgetResource is policy/v1 poddisruptionbudgets (the
// disruption controller keeps their status; pods/eviction spends it).
func podDisruptionBudgetResource() *Resource {
	return &Resource{
		GroupVersion: policyv1.SchemeGroupVersion, Plural: "poddisruptionbudgets", Singular: "poddisruptionbudget", Kind: "PodDisruptionBudget", Namespaced: true,
		ShortNames: []string{"pdb"}, Subresources: []string{"status"},
		install:    policyv1.AddToScheme,
		newObj:     func() Object { return &policyv1.PodDisruptionBudget{} },
		newList:    func() runtime.Object { return &policyv1.PodDisruptionBudgetList{} },
		generation: true,
		defaults: func(o Object) {
			p := o.(*policyv1.PodDisruptionBudget)
			if p.Spec.Selector == nil {
				p.Spec.Selector = &metav1.LabelSelector{} // policy/v1: every pod of the namespace
			}
		},
		validate: validatePDB,
		columns: []metav1.TableColumnDefinition{
			nameCol(),
			col("Min Available", "string", "The minimum number or percentage of available pods this budget requires", 0),
			col("Max Unavailable", "string", "The maximum number or percentage of unavailable pods this budget requires", 0),
			col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time", 0),
			ageCol(),
		},
		cells: func(o Object, now time.Time) []any {
			p := o.(*policyv1.PodDisruptionBudget)
			show := func(v *intstr.IntOrString) string {
				if v == nil {
					return "N/A"
				}
				return v.String()
			}
			return []any{p.Name, show(p.Spec.MinAvailable), show(p.Spec.MaxUnavailable), int64(p.Status.DisruptionsAllowed), age(o, now)}
		},
	}
}

func validatePDB(obj, old Object) field.ErrorList {
	p := obj.(*policyv1.PodDisruptionBudget)
	spec := field.NewPath("spec")
	errs := validateMeta(obj, old, true, apivalidation.NameIsDNSSubdomain)
	if p.Spec.MinAvailable != nil && p.Spec.MaxUnavailable != nil {
		errs = append(errs, field.Invalid(spec, p.Spec, "minAvailable and maxUnavailable cannot be both set"))
	}
	for _, f := range []struct {
		name string
		v    *intstr.IntOrString
	}{{"minAvailable", p.Spec.MinAvailable}, {"maxUnavailable", p.Spec.MaxUnavailable}} {
		name, v := f.name, f.v
		if v == nil {
			continue
		}
		if n, err := intstr.GetScaledValueFromIntOrPercent(v, 100, true); err != nil || n < 0 || (v.Type == intstr.String && n > 100) {
			errs = append(errs, field.Invalid(spec.Child(name), v.String(), "must be a non-negative integer or a percentage between 0% and 100%"))
		}
	}
	errs = append(errs, metavalidation.ValidateLabelSelector(p.Spec.Selector, metavalidation.LabelSelectorValidationOptions{}, spec.Child("selector"))...)
	switch pol := p.Spec.UnhealthyPodEvictionPolicy; {
	case pol == nil, *pol == policyv1.IfHealthyBudget, *pol == policyv1.AlwaysAllow:
	default:
		errs = append(errs, field.NotSupported(spec.Child("unhealthyPodEvictionPolicy"), *pol, []string{string(policyv1.IfHealthyBudget), string(policyv1.AlwaysAllow)}))
	}
	return errs
}

// DisruptionBudgetCause is the cause type of an eviction a budget refused.
const DisruptionBudgetCause = "DisruptionBudget"
