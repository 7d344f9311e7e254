package kubeapi

import (
	"fmt"
	"reflect"

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
	// defaults applies Kubernetes' defaults on create and update; may be nil.
	defaults func(obj object)
	// initStatus sets the status of a new object; nil leaves it empty.
	// Types with a "status" subresource keep status apart from spec: a spec
	// update keeps the stored status, a status update keeps everything else.
	initStatus func(obj object)
	// generation makes metadata.generation count spec changes.
	generation bool
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
		defaults:   func(o object) { setLabel(o, corev1.LabelMetadataName, o.GetName()) },
		initStatus: func(o object) { o.(*corev1.Namespace).Status.Phase = corev1.NamespaceActive },
		validate:   validateNamespace,
		table:      namespaceTable,
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
		defaults: func(o object) { defaultPodSpec(&o.(*corev1.Pod).Spec) },
		initStatus: func(o object) {
			p := o.(*corev1.Pod)
			p.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: qosClass(&p.Spec)}
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
		validate: validateEvent,
		table:    eventTable,
	})
	g.add(&resource{
		gv: apps, name: "deployments", singular: "deployment", kind: "Deployment", namespaced: true,
		shortNames: []string{"deploy"}, categories: []string{"all"}, subresources: []string{"status", "scale"},
		newObj:     func() object { return &appsv1.Deployment{} },
		newList:    func() runtime.Object { return &appsv1.DeploymentList{} },
		defaults:   func(o object) { defaultDeployment(o.(*appsv1.Deployment)) },
		generation: true,
		validate:   validateDeployment,
		table:      deploymentTable,
	})
	g.add(&resource{
		gv: apps, name: "replicasets", singular: "replicaset", kind: "ReplicaSet", namespaced: true,
		shortNames: []string{"rs"}, categories: []string{"all"}, subresources: []string{"status", "scale"},
		newObj:     func() object { return &appsv1.ReplicaSet{} },
		newList:    func() runtime.Object { return &appsv1.ReplicaSetList{} },
		defaults:   func(o object) { defaultReplicaSet(o.(*appsv1.ReplicaSet)) },
		generation: true,
		validate:   validateReplicaSet,
		table:      replicaSetTable,
	})
	return g
}

// structField returns the named top-level field ("Spec", "Status") of a typed
// object, or an invalid Value if it has none.
func structField(obj object, name string) reflect.Value {
	return reflect.ValueOf(obj).Elem().FieldByName(name)
}

// prepareCreate applies defaults and server-owned fields to a new object.
func (r *resource) prepareCreate(obj object) {
	if r.defaults != nil {
		r.defaults(obj)
	}
	if r.generation {
		obj.SetGeneration(1)
	}
	if st := structField(obj, "Status"); st.IsValid() && r.hasSub("status") {
		st.SetZero()
		if r.initStatus != nil {
			r.initStatus(obj)
		}
	}
}

// prepareUpdate carries what a spec update may not change from old into obj:
// the status (for types with a status subresource) and the generation, which
// counts spec changes.
func (r *resource) prepareUpdate(obj, old object) {
	if r.defaults != nil {
		r.defaults(obj)
	}
	if r.hasSub("status") {
		structField(obj, "Status").Set(structField(old, "Status"))
	}
	if r.generation {
		gen := old.GetGeneration()
		if !semanticEqual(structField(obj, "Spec").Interface(), structField(old, "Spec").Interface()) {
			gen++
		}
		obj.SetGeneration(gen)
	}
}

// prepareStatus makes obj old with obj's status: a status update changes
// nothing else.
func (r *resource) prepareStatus(obj, old object) {
	status := structField(obj, "Status")
	keep := reflect.New(status.Type()).Elem()
	keep.Set(status)
	reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(old.DeepCopyObject()).Elem())
	structField(obj, "Status").Set(keep)
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

// groupResource names the resource for messages: "deployments.apps" or "pods".
func (r *resource) groupResource() schema.GroupResource {
	return schema.GroupResource{Group: r.gv.Group, Resource: r.name}
}

func (r *resource) apiVersion() string { return r.gv.String() }
