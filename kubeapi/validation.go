package kubeapi

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var metaPath = field.NewPath("metadata")

func validateMeta(obj, old object, namespaced bool, nameFn apivalidation.ValidateNameFunc) field.ErrorList {
	errs := apivalidation.ValidateObjectMetaAccessor(obj, namespaced, nameFn, metaPath)
	if old != nil {
		errs = append(errs, apivalidation.ValidateObjectMetaAccessorUpdate(obj, old, metaPath)...)
	}
	return errs
}

func validateNamespace(obj, old object) field.ErrorList {
	return validateMeta(obj, old, false, apivalidation.NameIsDNSLabel)
}

func validateNode(obj, old object) field.ErrorList {
	return validateMeta(obj, old, false, apivalidation.NameIsDNSSubdomain)
}

func validateEvent(obj, old object) field.ErrorList {
	e := obj.(*corev1.Event)
	errs := validateMeta(obj, old, true, apivalidation.NameIsDNSSubdomain)
	if e.InvolvedObject.Namespace != "" && e.InvolvedObject.Namespace != e.Namespace {
		errs = append(errs, field.Invalid(field.NewPath("involvedObject", "namespace"), e.InvolvedObject.Namespace, "does not match event.namespace"))
	}
	return errs
}

func validatePod(obj, old object) field.ErrorList {
	p := obj.(*corev1.Pod)
	errs := validateMeta(obj, old, true, apivalidation.NameIsDNSSubdomain)
	errs = append(errs, validatePodSpec(&p.Spec, field.NewPath("spec"))...)
	if old != nil {
		op := old.(*corev1.Pod)
		// Like Kubernetes, a pod's spec is immutable but for images.
		a, b := p.Spec.DeepCopy(), op.Spec.DeepCopy()
		for i := range a.Containers {
			if i < len(b.Containers) {
				a.Containers[i].Image = b.Containers[i].Image
			}
		}
		if b.NodeName == "" {
			a.NodeName = ""
		}
		if !semanticEqual(a, b) {
			errs = append(errs, field.Forbidden(field.NewPath("spec"), "pod updates may not change fields other than `spec.containers[*].image`; delete and re-create the pod, or manage it with a Deployment"))
		}
	}
	return errs
}

func validatePodSpec(s *corev1.PodSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(s.Containers) == 0 {
		errs = append(errs, field.Required(path.Child("containers"), "a pod needs at least one container"))
	}
	names := sets.New[string]()
	hostPorts := sets.New[string]()
	for i, c := range s.Containers {
		cp := path.Child("containers").Index(i)
		for _, msg := range validation.IsDNS1123Label(c.Name) {
			errs = append(errs, field.Invalid(cp.Child("name"), c.Name, msg))
		}
		if names.Has(c.Name) {
			errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
		}
		names.Insert(c.Name)
		if c.Image == "" {
			errs = append(errs, field.Required(cp.Child("image"), "the container image to run"))
		}
		switch c.ImagePullPolicy {
		case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
		default:
			errs = append(errs, field.NotSupported(cp.Child("imagePullPolicy"), c.ImagePullPolicy, []string{"Always", "IfNotPresent", "Never"}))
		}
		for j, port := range c.Ports {
			pp := cp.Child("ports").Index(j)
			for _, msg := range validation.IsValidPortNum(int(port.ContainerPort)) {
				errs = append(errs, field.Invalid(pp.Child("containerPort"), port.ContainerPort, msg))
			}
			if port.HostPort != 0 {
				for _, msg := range validation.IsValidPortNum(int(port.HostPort)) {
					errs = append(errs, field.Invalid(pp.Child("hostPort"), port.HostPort, msg))
				}
				key := fmt.Sprintf("%s/%d", port.Protocol, port.HostPort)
				if hostPorts.Has(key) {
					errs = append(errs, field.Duplicate(pp.Child("hostPort"), port.HostPort))
				}
				hostPorts.Insert(key)
			}
			switch port.Protocol {
			case corev1.ProtocolTCP, corev1.ProtocolUDP:
			default:
				errs = append(errs, field.NotSupported(pp.Child("protocol"), port.Protocol, []string{"TCP", "UDP"}))
			}
		}
		for name, q := range c.Resources.Limits {
			if q.Sign() < 0 {
				errs = append(errs, field.Invalid(cp.Child("resources", "limits").Key(string(name)), q.String(), "must be greater than or equal to 0"))
			}
			if r, ok := c.Resources.Requests[name]; ok && r.Cmp(q) > 0 {
				errs = append(errs, field.Invalid(cp.Child("resources", "requests").Key(string(name)), r.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", name, q.String())))
			}
		}
		for name, q := range c.Resources.Requests {
			if q.Sign() < 0 {
				errs = append(errs, field.Invalid(cp.Child("resources", "requests").Key(string(name)), q.String(), "must be greater than or equal to 0"))
			}
		}
	}
	switch s.RestartPolicy {
	case corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		errs = append(errs, field.NotSupported(path.Child("restartPolicy"), s.RestartPolicy, []string{"Always", "OnFailure", "Never"}))
	}
	if len(s.InitContainers) > 0 {
		errs = append(errs, field.Forbidden(path.Child("initContainers"), "init containers are not supported by Mycel yet"))
	}
	if len(s.Volumes) > 0 {
		errs = append(errs, field.Forbidden(path.Child("volumes"), "volumes are not supported by Mycel yet"))
	}
	if s.TerminationGracePeriodSeconds != nil && *s.TerminationGracePeriodSeconds < 0 {
		errs = append(errs, field.Invalid(path.Child("terminationGracePeriodSeconds"), *s.TerminationGracePeriodSeconds, "must be greater than or equal to 0"))
	}
	return errs
}

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
	errs = append(errs, metavalidation.ValidateLabels(tmpl.Labels, path.Child("template", "metadata", "labels"))...)
	errs = append(errs, validatePodSpec(&tmpl.Spec, path.Child("template", "spec"))...)
	return errs
}

func validateReplicas(n *int32, path *field.Path) field.ErrorList {
	if n != nil && *n < 0 {
		return field.ErrorList{field.Invalid(path, *n, "must be greater than or equal to 0")}
	}
	return nil
}

func validateDeployment(obj, old object) field.ErrorList {
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
		if !semanticEqual(d.Spec.Selector, od.Spec.Selector) {
			errs = append(errs, field.Invalid(spec.Child("selector"), d.Spec.Selector, "field is immutable"))
		}
	}
	return errs
}

func validateReplicaSet(obj, old object) field.ErrorList {
	rs := obj.(*appsv1.ReplicaSet)
	spec := field.NewPath("spec")
	errs := validateMeta(obj, old, true, apivalidation.NameIsDNSSubdomain)
	errs = append(errs, validateReplicas(rs.Spec.Replicas, spec.Child("replicas"))...)
	errs = append(errs, validateTemplate(rs.Spec.Selector, &rs.Spec.Template, spec)...)
	return errs
}
