package objects

import (
	"fmt"
	"reflect"
	"slices"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Object is what every served kind is: a typed API struct pointer, both a
// runtime.Object and a metav1.Object. It is an alias of an unnamed
// interface, so consumers can declare the same type without importing this
// package.
type Object = interface {
	runtime.Object
	metav1.Object
}

// Resource describes one served resource type and holds the hooks that make
// its objects behave as Kubernetes users expect. Each kind is one file of
// this package that returns its Resource; resources() lists them all.
type Resource struct {
	// GroupVersion, Plural, Singular and Kind name the resource
	// (apps/v1, "deployments", "deployment", "Deployment").
	GroupVersion schema.GroupVersion
	Plural       string
	Singular     string
	Kind         string
	// Namespaced resources live in a namespace and go with it.
	Namespaced bool
	ShortNames []string
	Categories []string
	// Subresources served besides the resource: "status", "scale", "log".
	Subresources []string

	// install registers the resource's API group with a scheme.
	install func(*runtime.Scheme) error
	newObj  func() Object
	newList func() runtime.Object
	// fields returns the field-selector fields of an object beyond
	// metadata.name and metadata.namespace.
	fields func(Object) fields.Set
	// defaults applies Kubernetes' defaults on create and update.
	defaults func(Object)
	// initStatus sets the status of a new object. Resources with a
	// "status" subresource keep status apart from spec: a spec update
	// keeps the stored status, a status update keeps everything else.
	initStatus func(Object)
	// syncStatus derives status fields the server owns from the spec, on
	// create and on spec updates (a CRD's storedVersions).
	syncStatus func(Object)
	// generation makes metadata.generation count spec changes.
	generation bool
	// validate checks an object (old is nil on create).
	validate func(obj, old Object) field.ErrorList
	// columns and cells render `kubectl get` Tables.
	columns []metav1.TableColumnDefinition
	cells   func(obj Object, now time.Time) []any
	// scale reads and sets a workload's replicas, for the "scale"
	// subresource.
	scale *scaling
	// graceful decides whether a delete only marks the object (see
	// DeleteOptions); nil removes at once.
	graceful func(cur Object, opts DeleteOptions) (grace int64, mark bool)
	// finishes marks resources whose marked objects a controller removes
	// itself (a namespace once empty, a CRD once its objects are gone), so
	// an update that leaves one without finalizers does not.
	finishes bool
	// controls marks resources whose objects control others (their
	// dependents name them in a controller ownerReference).
	controls bool
	// sealed resources are encrypted in the store (Config.Sealer).
	sealed bool
	// custom resources are a CRD's: unstructured, not in the scheme, stored
	// under storage (plural.group) rather than the plural.
	custom  bool
	storage string
	// terminating, for a custom resource whose CRD is being deleted, is
	// why no object of it can be created.
	terminating string
	// unknownFields lists the fields of a custom object its schema does not
	// declare (the defaults hook prunes them).
	unknownFields func(Object) []string
}

// UnknownFields lists the fields of obj its schema does not declare, which
// are dropped when it is stored: for custom resources, whose schema the
// JSON decoder does not know.
func (r *Resource) UnknownFields(obj Object) []string {
	if r.unknownFields == nil {
		return nil
	}
	return r.unknownFields(obj)
}

// Custom reports whether the resource is a CRD's (its objects are
// *unstructured.Unstructured).
func (r *Resource) Custom() bool { return r.custom }

// scaling gives a workload's replicas: wanted (spec), observed (status),
// and the selector of its pods.
type scaling struct {
	get func(Object) (spec, status int32, selector *metav1.LabelSelector)
	set func(Object, int32)
}

// GVK is the resource's group, version and kind.
func (r *Resource) GVK() schema.GroupVersionKind { return r.GroupVersion.WithKind(r.Kind) }

// GroupResource names the resource in messages: "deployments.apps", "pods".
func (r *Resource) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: r.GroupVersion.Group, Resource: r.Plural}
}

// HasSub reports whether the resource serves subresource sub.
func (r *Resource) HasSub(sub string) bool { return slices.Contains(r.Subresources, sub) }

// New returns an empty object of the resource's kind.
func (r *Resource) New() Object { return r.newObj() }

// NewList returns an empty list of the resource's kind.
func (r *Resource) NewList() runtime.Object { return r.newList() }

// Columns are the Table columns `kubectl get` shows (priority 1: -o wide).
func (r *Resource) Columns() []metav1.TableColumnDefinition { return r.columns }

// Cells renders obj as one Table row of Columns.
func (r *Resource) Cells(obj Object, now time.Time) []any { return r.cells(obj, now) }

// FieldSet returns every selectable field of obj.
func (r *Resource) FieldSet(obj Object) fields.Set {
	set := fields.Set{"metadata.name": obj.GetName()}
	if r.Namespaced {
		set["metadata.namespace"] = obj.GetNamespace()
	}
	if r.fields != nil {
		for k, v := range r.fields(obj) {
			set[k] = v
		}
	}
	return set
}

// Matches reports whether obj matches both selectors (nil matches all).
func (r *Resource) Matches(obj Object, ls labels.Selector, fs fields.Selector) bool {
	if ls != nil && !ls.Matches(labels.Set(obj.GetLabels())) {
		return false
	}
	return fs == nil || fs.Matches(r.FieldSet(obj))
}

// Scale renders a workload's autoscaling/v1 Scale.
func (r *Resource) Scale(obj Object) (*autoscalingv1.Scale, error) {
	if r.scale == nil {
		return nil, fmt.Errorf("objects: %s has no scale subresource", r.GroupResource())
	}
	sc := &autoscalingv1.Scale{TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"}}
	sc.Name, sc.Namespace, sc.UID = obj.GetName(), obj.GetNamespace(), obj.GetUID()
	sc.ResourceVersion, sc.CreationTimestamp = obj.GetResourceVersion(), obj.GetCreationTimestamp()
	var sel *metav1.LabelSelector
	sc.Spec.Replicas, sc.Status.Replicas, sel = r.scale.get(obj)
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, err
	}
	sc.Status.Selector = s.String()
	return sc, nil
}

// SetReplicas sets a workload's wanted replicas.
func (r *Resource) SetReplicas(obj Object, n int32) error {
	if r.scale == nil {
		return fmt.Errorf("objects: %s has no scale subresource", r.GroupResource())
	}
	r.scale.set(obj, n)
	return nil
}

// key is the store key of a named object of this resource.
func (r *Resource) key(namespace, name string) string {
	return r.prefix(namespace) + name
}

// prefix is the store key prefix for a namespace ("" for all).
func (r *Resource) prefix(namespace string) string {
	base := r.Plural
	if r.storage != "" {
		base = r.storage
	}
	if namespace == "" {
		return base + "/"
	}
	return base + "/" + namespace + "/"
}

func (r *Resource) setTypeMeta(obj runtime.Object) { obj.GetObjectKind().SetGroupVersionKind(r.GVK()) }

// structField returns the named top-level field ("Spec", "Status") of a typed
// object, or an invalid Value if it has none.
func structField(obj Object, name string) reflect.Value {
	return reflect.ValueOf(obj).Elem().FieldByName(name)
}

// prepareCreate applies defaults and server-owned fields to a new object.
func (r *Resource) prepareCreate(obj Object) {
	if r.defaults != nil {
		r.defaults(obj)
	}
	if r.generation {
		obj.SetGeneration(1)
	}
	if u, ok := obj.(*unstructured.Unstructured); ok && r.HasSub("status") {
		delete(u.Object, "status")
	} else if st := structField(obj, "Status"); st.IsValid() && r.HasSub("status") {
		st.SetZero()
		if r.initStatus != nil {
			r.initStatus(obj)
		}
	}
	if r.syncStatus != nil {
		r.syncStatus(obj)
	}
}

// unstructuredParts splits a custom object into its status and the rest
// but metadata (what counts as its spec).
func unstructuredParts(u *unstructured.Unstructured) (status any, hasStatus bool, spec map[string]any) {
	spec = map[string]any{}
	for k, v := range u.Object {
		switch k {
		case "status":
			status, hasStatus = v, true
		case "metadata", "apiVersion", "kind":
		default:
			spec[k] = v
		}
	}
	return status, hasStatus, spec
}

// prepareUpdate carries what a spec update may not change from old into obj:
// the status (for resources with a status subresource) and the generation,
// which counts spec changes.
func (r *Resource) prepareUpdate(obj, old Object) {
	if r.defaults != nil {
		r.defaults(obj)
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		prev := old.(*unstructured.Unstructured)
		if r.HasSub("status") {
			delete(u.Object, "status")
			if st, ok, _ := unstructuredParts(prev); ok {
				u.Object["status"] = runtime.DeepCopyJSONValue(st)
			}
		}
		// A custom object's generation counts every change but metadata's
		// (and status's, with a status subresource).
		st, _, spec := unstructuredParts(u)
		prevSt, _, prevSpec := unstructuredParts(prev)
		gen := old.GetGeneration()
		if !equality.Semantic.DeepEqual(spec, prevSpec) || (!r.HasSub("status") && !equality.Semantic.DeepEqual(st, prevSt)) {
			gen++
		}
		obj.SetGeneration(gen)
		return
	}
	if r.HasSub("status") {
		structField(obj, "Status").Set(structField(old, "Status"))
	}
	if r.syncStatus != nil {
		r.syncStatus(obj)
	}
	if r.generation {
		gen := old.GetGeneration()
		if !equality.Semantic.DeepEqual(structField(obj, "Spec").Interface(), structField(old, "Spec").Interface()) {
			gen++
		}
		obj.SetGeneration(gen)
	}
}

// prepareStatus makes obj old with obj's status: a status update changes
// nothing else.
func (r *Resource) prepareStatus(obj, old Object) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		st, has, _ := unstructuredParts(u)
		u.Object = old.(*unstructured.Unstructured).DeepCopy().Object
		delete(u.Object, "status")
		if has {
			u.Object["status"] = st
		}
		return
	}
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

// Controls reports whether objects of this resource control others (their
// dependents name them in a controller ownerReference and are garbage
// collected when they go).
func (r *Resource) Controls() bool { return r.controls }
