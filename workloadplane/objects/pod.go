package objects

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// podResource is core/v1 pods. Deleting a pod bound to a node only marks
// it: its node's agent stops the containers within the grace period, then
// removes the pod with a zero grace period.
func podResource() *Resource {
	return &Resource{
		GroupVersion: corev1.SchemeGroupVersion, Plural: "pods", Singular: "pod", Kind: "Pod", Namespaced: true,
		ShortNames: []string{"po"}, Categories: []string{"all"}, Subresources: []string{"status", "log", "exec", "attach", "portforward", "eviction"},
		install: corev1.AddToScheme,
		newObj:  func() Object { return &corev1.Pod{} },
		newList: func() runtime.Object { return &corev1.PodList{} },
		fields: func(o Object) fields.Set {
			p := o.(*corev1.Pod)
			return fields.Set{
				"spec.nodeName":      p.Spec.NodeName,
				"spec.restartPolicy": string(p.Spec.RestartPolicy),
				"status.phase":       string(p.Status.Phase),
				"status.podIP":       p.Status.PodIP,
			}
		},
		defaults: func(o Object) {
			p := o.(*corev1.Pod)
			defaultPodSpec(&p.Spec)
			// As the ServiceAccount admission plugin: pods run as their
			// namespace's default ServiceAccount unless they name one.
			if p.Spec.ServiceAccountName == "" {
				p.Spec.ServiceAccountName = p.Spec.DeprecatedServiceAccount
			}
			if p.Spec.ServiceAccountName == "" {
				p.Spec.ServiceAccountName = DefaultServiceAccount
			}
			p.Spec.DeprecatedServiceAccount = p.Spec.ServiceAccountName
		},
		initStatus: func(o Object) {
			p := o.(*corev1.Pod)
			p.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: qosClass(&p.Spec)}
		},
		validate: validatePod,
		columns: []metav1.TableColumnDefinition{
			nameCol(),
			col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic.", 0),
			col("Status", "string", "The aggregate status of the containers in this pod.", 0),
			col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", 0),
			ageCol(),
			col("IP", "string", "IP address allocated to the pod.", 1),
			col("Node", "string", "Name of the node the pod is assigned to.", 1),
			col("Nominated Node", "string", "Name of the node the pod is nominated to.", 1),
			col("Readiness Gates", "string", "Pod readiness gates.", 1),
		},
		cells: podCells,
		graceful: func(cur Object, opts DeleteOptions) (int64, bool) {
			pod := cur.(*corev1.Pod)
			if pod.Spec.NodeName == "" || zeroGrace(opts) {
				return 0, false
			}
			grace := int64(30)
			if pod.Spec.TerminationGracePeriodSeconds != nil {
				grace = *pod.Spec.TerminationGracePeriodSeconds
			}
			if opts.GracePeriodSeconds != nil {
				grace = *opts.GracePeriodSeconds
			}
			return grace, true
		},
	}
}

// PodCondition returns p's condition of type t, or nil.
func PodCondition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// PodReady reports whether p's Ready condition is True.
func PodReady(p *corev1.Pod) bool {
	c := PodCondition(p, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

func podCells(o Object, now time.Time) []any {
	p := o.(*corev1.Pod)
	ready, restarts := 0, int32(0)
	var lastRestart time.Time
	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	// As kubectl: while an init container has not completed, it is the
	// reason (Init:N/M, Init:Error, Init:CrashLoopBackOff).
	initializing := false
	for i, cs := range p.Status.InitContainerStatuses {
		restarts += cs.RestartCount
		if t := cs.LastTerminationState.Terminated; t != nil && t.FinishedAt.After(lastRestart) {
			lastRestart = t.FinishedAt.Time
		}
		switch t := cs.State.Terminated; {
		case t != nil && t.ExitCode == 0:
			continue
		case t != nil && t.Reason != "":
			reason = "Init:" + t.Reason
		case t != nil:
			reason = fmt.Sprintf("Init:ExitCode:%d", t.ExitCode)
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + cs.State.Waiting.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(p.Spec.InitContainers))
		}
		initializing = true
		break
	}
	for _, cs := range p.Status.ContainerStatuses {
		restarts += cs.RestartCount
		if cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.FinishedAt.After(lastRestart) {
			lastRestart = cs.LastTerminationState.Terminated.FinishedAt.Time
		}
		if cs.Ready && cs.State.Running != nil {
			ready++
		}
	}
	// As kubectl: the last waiting or terminated reason wins.
	for i := len(p.Status.ContainerStatuses) - 1; i >= 0 && !initializing; i-- {
		cs := p.Status.ContainerStatuses[i]
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
			reason = cs.State.Waiting.Reason
		case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
			reason = cs.State.Terminated.Reason
		case cs.State.Terminated != nil:
			reason = fmt.Sprintf("ExitCode:%d", cs.State.Terminated.ExitCode)
		default:
			continue
		}
		break
	}
	if p.DeletionTimestamp != nil {
		reason = "Terminating"
	}
	r := fmt.Sprint(restarts)
	if !lastRestart.IsZero() {
		r = fmt.Sprintf("%d (%s ago)", restarts, since(lastRestart, now))
	}
	return []any{p.Name, fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers)), reason, r, age(o, now),
		orNone(p.Status.PodIP), orNone(p.Spec.NodeName), orNone(p.Status.NominatedNodeName), "<none>"}
}

// defaultPodSpec applies the defaults a Kubernetes API server applies, so
// manifests round-trip the way users expect (kubectl diff, describe).
func defaultPodSpec(s *corev1.PodSpec) {
	if s.RestartPolicy == "" {
		s.RestartPolicy = corev1.RestartPolicyAlways
	}
	if s.DNSPolicy == "" {
		s.DNSPolicy = corev1.DNSClusterFirst
	}
	if s.SchedulerName == "" {
		s.SchedulerName = "default-scheduler"
	}
	if s.TerminationGracePeriodSeconds == nil {
		s.TerminationGracePeriodSeconds = new(int64(30))
	}
	if s.SecurityContext == nil {
		s.SecurityContext = &corev1.PodSecurityContext{}
	}
	defaultVolumes(s)
	for i := range s.InitContainers {
		defaultContainer(&s.InitContainers[i])
	}
	for i := range s.Containers {
		defaultContainer(&s.Containers[i])
	}
}

func defaultContainer(c *corev1.Container) {
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = corev1.PullIfNotPresent
		if tag := imageTag(c.Image); tag == "" || tag == "latest" {
			c.ImagePullPolicy = corev1.PullAlways
		}
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	// Requests default to limits, as in Kubernetes.
	for name, q := range c.Resources.Limits {
		if _, ok := c.Resources.Requests[name]; !ok {
			if c.Resources.Requests == nil {
				c.Resources.Requests = corev1.ResourceList{}
			}
			c.Resources.Requests[name] = q.DeepCopy()
		}
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
	defaultProbe(c.LivenessProbe)
	defaultProbe(c.ReadinessProbe)
	defaultProbe(c.StartupProbe)
	if c.Lifecycle != nil {
		for _, h := range []*corev1.LifecycleHandler{c.Lifecycle.PostStart, c.Lifecycle.PreStop} {
			if h != nil {
				defaultHTTPGet(h.HTTPGet)
			}
		}
	}
}

// imageTag returns the tag of an image reference, "" if it has none (or only
// a digest).
func imageTag(image string) string {
	if strings.Contains(image, "@") {
		return "digest"
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return ""
	}
	return image[i+1:]
}

// qosClass computes a pod's QoS class as Kubernetes does.
func qosClass(s *corev1.PodSpec) corev1.PodQOSClass {
	requests, limits, guaranteed := 0, 0, true
	for _, c := range s.Containers {
		requests += len(c.Resources.Requests)
		limits += len(c.Resources.Limits)
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			l, ok := c.Resources.Limits[r]
			if !ok {
				guaranteed = false
				continue
			}
			if q, ok := c.Resources.Requests[r]; ok && q.Cmp(l) != 0 {
				guaranteed = false
			}
		}
	}
	switch {
	case requests == 0 && limits == 0:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	default:
		return corev1.PodQOSBurstable
	}
}

func validatePod(obj, old Object) field.ErrorList {
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
		if !equality.Semantic.DeepEqual(a, b) {
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
	type entry struct {
		c    *corev1.Container
		path *field.Path
		init bool
	}
	var all []entry
	for i := range s.InitContainers {
		all = append(all, entry{&s.InitContainers[i], path.Child("initContainers").Index(i), true})
	}
	for i := range s.Containers {
		all = append(all, entry{&s.Containers[i], path.Child("containers").Index(i), false})
	}
	for _, e := range all {
		c, cp := *e.c, e.path
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
		errs = append(errs, validateEnv(&c, cp)...)
		errs = append(errs, validateProbesAndHooks(&c, cp, e.init)...)
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
	errs = append(errs, validateVolumes(s, path)...)
	errs = append(errs, validateTolerations(s.Tolerations, path.Child("tolerations"))...)
	if s.TerminationGracePeriodSeconds != nil && *s.TerminationGracePeriodSeconds < 0 {
		errs = append(errs, field.Invalid(path.Child("terminationGracePeriodSeconds"), *s.TerminationGracePeriodSeconds, "must be greater than or equal to 0"))
	}
	return errs
}
