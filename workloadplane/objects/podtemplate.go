package objects

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// What the workload resources (Deployments, ReplicaSets) share: a selector,
// a pod template and a replica count.

// validateTemplate checks a workload's selector and pod template.
func validateTemplate(sel *metav1.LabelSelector, tmpl *corev1.PodTemplateSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		errs = append(errs, field.Required(path.Child("selector"), "a non-empty selector is required"))
	} else {
		errs = append(errs, metavalidation.ValidateLabelSelector(sel, metavalidation.LabelSelectorValidationOptions{}, path.Child("selector"))...)
		if s, err := metav1.LabelSelectorAsSelector(sel); err == nil && !s.Matches(labels.Set(tmpl.Labels)) {
			errs = append(errs, field.Invalid(path.Child("template", "metadata", "labels"), tmpl.Labels, "`selector` does not match template `labels`"))
		}
	}
	return append(errs, validatePodTemplate(tmpl, path)...)
}

// validatePodTemplate validates the template at path.template.
func validatePodTemplate(tmpl *corev1.PodTemplateSpec, path *field.Path) field.ErrorList {
	errs := metavalidation.ValidateLabels(tmpl.Labels, path.Child("template", "metadata", "labels"))
	return append(errs, validatePodSpec(&tmpl.Spec, path.Child("template", "spec"))...)
}

func validateReplicas(n *int32, path *field.Path) field.ErrorList {
	if n != nil && *n < 0 {
		return field.ErrorList{field.Invalid(path, *n, "must be greater than or equal to 0")}
	}
	return nil
}

// templateColumns are the -o wide columns of a workload: its containers,
// images and selector.
func templateColumns(selectorHelp string) []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		col("Containers", "string", "Names of each container in the template.", 1),
		col("Images", "string", "Images referenced by each container in the template.", 1),
		col("Selector", "string", selectorHelp, 1),
	}
}

func templateCells(s *corev1.PodSpec, sel *metav1.LabelSelector) []any {
	var names, images []string
	for _, c := range s.Containers {
		names = append(names, c.Name)
		images = append(images, c.Image)
	}
	return []any{strings.Join(names, ","), strings.Join(images, ","), metav1.FormatLabelSelector(sel)}
}
