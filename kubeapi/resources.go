package kubeapi

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Object is what every served type is: a typed k8s.io/api struct pointer,
// both a runtime.Object and a metav1.Object. It is an alias of an unnamed
// interface so consumers can declare the same type without importing this
// package.
type Object = interface {
	runtime.Object
	metav1.Object
}

type object = Object

// resource describes one served resource type.
type resource struct {
	gv         schema.GroupVersion
	name       string // plural, e.g. "pods"
	singular   string
	kind       string
	namespaced bool
	shortNames []string
	categories []string
	// subresources served besides the main resource: "status", "scale", "log".
	subresources []string

	newObj  func() object
	newList func() runtime.Object

	// fields returns the field-selector fields of an object, beyond
	// metadata.name and metadata.namespace.
	fields func(object) fields.Set
	// prepareCreate sets defaults and server-owned fields on a new object.
	prepareCreate func(obj object)
	// prepareUpdate carries server-owned parts of old into obj on a spec
	// update (for status-bearing types: status is kept; generation bumps on
	// spec changes).
	prepareUpdate func(obj, old object)
	// prepareStatus carries everything but status from old into obj for a
	// status-subresource update.
	prepareStatus func(obj, old object)
	// validate checks an object (old is nil on create).
	validate func(obj, old object) field.ErrorList
	// table renders Table rows.
	table tableConvertor
}

func (r *resource) gvk() schema.GroupVersionKind { return r.gv.WithKind(r.kind) }

func (r *resource) hasSub(sub string) bool {
	for _, s := range r.subresources {
		if s == sub {
			return true
		}
	}
	return false
}

// key is the store key of a named object of this resource.
func (r *resource) key(namespace, name string) string {
	return r.name + "/" + namespace + "/" + name
}

// prefix is the store key prefix for a namespace ("" for all).
func (r *resource) prefix(namespace string) string {
	if namespace == "" {
		return r.name + "/"
	}
	return r.name + "/" + namespace + "/"
}

// fieldSet returns every selectable field of obj.
func (r *resource) fieldSet(obj object) fields.Set {
	set := fields.Set{"metadata.name": obj.GetName()}
	if r.namespaced {
		set["metadata.namespace"] = obj.GetNamespace()
	}
	if r.fields != nil {
		for k, v := range r.fields(obj) {
			set[k] = v
		}
	}
	return set
}

// registry is the set of served resources.
type registry struct {
	byGVR map[schema.GroupVersionResource]*resource
	all   []*resource
}

func (g *registry) add(r *resource) {
	if g.byGVR == nil {
		g.byGVR = map[schema.GroupVersionResource]*resource{}
	}
	g.byGVR[r.gv.WithResource(r.name)] = r
	g.all = append(g.all, r)
}

func (g *registry) lookup(gv schema.GroupVersion, name string) *resource {
	return g.byGVR[gv.WithResource(name)]
}

// groupVersions lists the served group versions in registration order.
func (g *registry) groupVersions() []schema.GroupVersion {
	var out []schema.GroupVersion
	seen := map[schema.GroupVersion]bool{}
	for _, r := range g.all {
		if !seen[r.gv] {
			seen[r.gv] = true
			out = append(out, r.gv)
		}
	}
	return out
}

func (g *registry) resources(gv schema.GroupVersion) []*resource {
	var out []*resource
	for _, r := range g.all {
		if r.gv == gv {
			out = append(out, r)
		}
	}
	return out
}

func newRegistry() *registry {
	g := &registry{}
	core := corev1.SchemeGroupVersion
	apps := appsv1.SchemeGroupVersion
	g.add(&resource{
		gv: core, name: "namespaces", singular: "namespace", kind: "Namespace",
		shortNames: []string{"ns"}, subresources: []string{"status"},
		newObj:  func() object { return &corev1.Namespace{} },
		newList: func() runtime.Object { return &corev1.NamespaceList{} },
		fields: func(o object) fields.Set {
			return fields.Set{"status.phase": string(o.(*corev1.Namespace).Status.Phase)}
		},
		prepareCreate: func(o object) {
			ns := o.(*corev1.Namespace)
			ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
			setLabel(ns, corev1.LabelMetadataName, ns.Name)
		},
		prepareUpdate: func(o, old object) {
			o.(*corev1.Namespace).Status = old.(*corev1.Namespace).Status
			setLabel(o, corev1.LabelMetadataName, o.GetName())
		},
		prepareStatus: func(o, old object) {
			n := old.(*corev1.Namespace).DeepCopy()
			n.Status = o.(*corev1.Namespace).Status
			*o.(*corev1.Namespace) = *n
		},
		validate: validateNamespace,
		table:    namespaceTable,
	})
	g.add(&resource{
		gv: core, name: "pods", singular: "pod", kind: "Pod", namespaced: true,
		shortNames: []string{"po"}, categories: []string{"all"}, subresources: []string{"status", "log"},
		newObj:  func() object { return &corev1.Pod{} },
		newList: func() runtime.Object { return &corev1.PodList{} },
		fields: func(o object) fields.Set {
			p := o.(*corev1.Pod)
			return fields.Set{
				"spec.nodeName":      p.Spec.NodeName,
				"spec.restartPolicy": string(p.Spec.RestartPolicy),
				"status.phase":       string(p.Status.Phase),
				"status.podIP":       p.Status.PodIP,
			}
		},
		prepareCreate: func(o object) {
			p := o.(*corev1.Pod)
			defaultPodSpec(&p.Spec)
			p.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: qosClass(&p.Spec)}
		},
		prepareUpdate: func(o, old object) {
			p, op := o.(*corev1.Pod), old.(*corev1.Pod)
			defaultPodSpec(&p.Spec)
			p.Status = op.Status
		},
		prepareStatus: func(o, old object) {
			p := old.(*corev1.Pod).DeepCopy()
			p.Status = o.(*corev1.Pod).Status
			*o.(*corev1.Pod) = *p
		},
		validate: validatePod,
		table:    podTable,
	})
	g.add(&resource{
		gv: core, name: "nodes", singular: "node", kind: "Node",
		shortNames: []string{"no"}, subresources: []string{"status"},
		newObj:  func() object { return &corev1.Node{} },
		newList: func() runtime.Object { return &corev1.NodeList{} },
		fields: func(o object) fields.Set {
			return fields.Set{"spec.unschedulable": fmt.Sprint(o.(*corev1.Node).Spec.Unschedulable)}
		},
		prepareCreate: func(object) {},
		prepareUpdate: func(o, old object) { o.(*corev1.Node).Status = old.(*corev1.Node).Status },
		prepareStatus: func(o, old object) {
			n := old.(*corev1.Node).DeepCopy()
			n.Status = o.(*corev1.Node).Status
			*o.(*corev1.Node) = *n
		},
		validate: validateNode,
		table:    nodeTable,
	})
	g.add(&resource{
		gv: core, name: "events", singular: "event", kind: "Event", namespaced: true,
		shortNames: []string{"ev"},
		newObj:     func() object { return &corev1.Event{} },
		newList:    func() runtime.Object { return &corev1.EventList{} },
		fields: func(o object) fields.Set {
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
		prepareCreate: func(object) {},
		prepareUpdate: func(object, object) {},
		validate:      validateEvent,
		table:         eventTable,
	})
	g.add(&resource{
		gv: apps, name: "deployments", singular: "deployment", kind: "Deployment", namespaced: true,
		shortNames: []string{"deploy"}, categories: []string{"all"}, subresources: []string{"status", "scale"},
		newObj:  func() object { return &appsv1.Deployment{} },
		newList: func() runtime.Object { return &appsv1.DeploymentList{} },
		prepareCreate: func(o object) {
			d := o.(*appsv1.Deployment)
			defaultDeployment(d)
			d.Generation = 1
			d.Status = appsv1.DeploymentStatus{}
		},
		prepareUpdate: func(o, old object) {
			d, od := o.(*appsv1.Deployment), old.(*appsv1.Deployment)
			defaultDeployment(d)
			d.Status = od.Status
			d.Generation = od.Generation
			if !semanticEqual(d.Spec, od.Spec) {
				d.Generation++
			}
		},
		prepareStatus: func(o, old object) {
			d := old.(*appsv1.Deployment).DeepCopy()
			d.Status = o.(*appsv1.Deployment).Status
			*o.(*appsv1.Deployment) = *d
		},
		validate: validateDeployment,
		table:    deploymentTable,
	})
	g.add(&resource{
		gv: apps, name: "replicasets", singular: "replicaset", kind: "ReplicaSet", namespaced: true,
		shortNames: []string{"rs"}, categories: []string{"all"}, subresources: []string{"status", "scale"},
		newObj:  func() object { return &appsv1.ReplicaSet{} },
		newList: func() runtime.Object { return &appsv1.ReplicaSetList{} },
		prepareCreate: func(o object) {
			rs := o.(*appsv1.ReplicaSet)
			if rs.Spec.Replicas == nil {
				rs.Spec.Replicas = ptr(int32(1))
			}
			defaultPodSpec(&rs.Spec.Template.Spec)
			rs.Generation = 1
			rs.Status = appsv1.ReplicaSetStatus{}
		},
		prepareUpdate: func(o, old object) {
			rs, ors := o.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
			if rs.Spec.Replicas == nil {
				rs.Spec.Replicas = ptr(int32(1))
			}
			defaultPodSpec(&rs.Spec.Template.Spec)
			rs.Status = ors.Status
			rs.Generation = ors.Generation
			if !semanticEqual(rs.Spec, ors.Spec) {
				rs.Generation++
			}
		},
		prepareStatus: func(o, old object) {
			rs := old.(*appsv1.ReplicaSet).DeepCopy()
			rs.Status = o.(*appsv1.ReplicaSet).Status
			*o.(*appsv1.ReplicaSet) = *rs
		},
		validate: validateReplicaSet,
		table:    replicaSetTable,
	})
	return g
}

func setLabel(o metav1.Object, k, v string) {
	l := o.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	l[k] = v
	o.SetLabels(l)
}

func ptr[T any](v T) *T { return &v }

// kindOf names an object for messages: "deployments.apps" or "pods".
func (r *resource) groupResource() schema.GroupResource {
	return schema.GroupResource{Group: r.gv.Group, Resource: r.name}
}

func (r *resource) apiVersion() string { return r.gv.String() }

func (r *resource) String() string {
	return strings.TrimSuffix(r.name+"."+r.gv.Group, ".")
}
