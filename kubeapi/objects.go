package kubeapi

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/mycelfabric/mycel/workloadplane/store"
)

// Store is the object store the API keeps objects in.
type Store interface {
	// Get returns the live record under key or store.ErrNotFound.
	Get(key string) (store.Record, error)
	// List returns live records under prefix and the resourceVersion they
	// are consistent with.
	List(prefix string) ([]store.Record, uint64, error)
	// Put writes a value under the precondition.
	Put(key string, value []byte, pre store.Precondition) (store.Record, error)
	// Delete writes a tombstone under the precondition.
	Delete(key string, pre store.Precondition) (store.Record, error)
	// Watch follows changes under prefix after fromRV, or fails with
	// store.ErrExpired.
	Watch(prefix string, fromRV uint64) (*store.Watcher, error)
}

// Objects is the typed object layer over the store: defaults, validation,
// server-owned fields, resourceVersions and optimistic concurrency. The HTTP
// handlers and in-process controllers both write through it, so every
// object in the store has passed the same checks. Admission is the HTTP
// layer's job: controllers are trusted system components.
type Objects struct {
	store  Store
	reg    *registry
	now    func() time.Time
	events eventCache
}

// NewObjects returns the object layer over s. now may be nil.
func NewObjects(s Store, now func() time.Time) *Objects {
	if now == nil {
		now = time.Now
	}
	return &Objects{store: s, reg: newRegistry(), now: now}
}

// resourceOf finds the served resource of a typed object.
func (o *Objects) resourceOf(obj runtime.Object) (*resource, error) {
	gvks, _, err := scheme.Scheme.ObjectKinds(obj)
	if err != nil {
		return nil, err
	}
	for _, r := range o.reg.all {
		if r.gvk() == gvks[0] {
			return r, nil
		}
	}
	return nil, fmt.Errorf("kubeapi: %s is not served", gvks[0])
}

// decode turns a stored record into a typed object carrying the record's
// resourceVersion.
func (o *Objects) decode(r *resource, rec store.Record) (object, error) {
	obj := r.newObj()
	if err := json.Unmarshal(rec.Value, obj); err != nil {
		return nil, fmt.Errorf("kubeapi: stored %s is corrupt: %w", rec.Key, err)
	}
	obj.SetResourceVersion(strconv.FormatUint(rec.RV, 10))
	setTypeMeta(r, obj)
	return obj, nil
}

func setTypeMeta(r *resource, obj runtime.Object) {
	obj.GetObjectKind().SetGroupVersionKind(r.gvk())
}

// encode serializes obj for the store; the resourceVersion is the store's
// and is not kept in the document.
func encode(r *resource, obj object) ([]byte, error) {
	rv := obj.GetResourceVersion()
	obj.SetResourceVersion("")
	setTypeMeta(r, obj)
	data, err := json.Marshal(obj)
	obj.SetResourceVersion(rv)
	return data, err
}

// parseRV reads a resourceVersion as sent by a client.
func parseRV(rv string) (uint64, error) {
	if rv == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(rv, 10, 64)
	if err != nil {
		return 0, apierrors.NewBadRequest(fmt.Sprintf("invalid resourceVersion %q: must be a number from a previous response", rv))
	}
	return n, nil
}

// storeErr maps store errors to API errors for r/name.
func storeErr(r *resource, name string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return apierrors.NewNotFound(r.groupResource(), name)
	case errors.Is(err, store.ErrExists):
		return apierrors.NewAlreadyExists(r.groupResource(), name)
	case errors.Is(err, store.ErrConflict):
		return apierrors.NewConflict(r.groupResource(), name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	case errors.Is(err, store.ErrExpired):
		return apierrors.NewResourceExpired("too old resource version: the watch must be restarted from a fresh list")
	}
	return apierrors.NewInternalError(err)
}

func invalid(r *resource, name string, errs field.ErrorList) error {
	return apierrors.NewInvalid(r.gvk().GroupKind(), name, errs)
}

// Get reads the object named by obj's namespace and name into obj.
func (o *Objects) Get(_ context.Context, obj Object) error {
	r, err := o.resourceOf(obj)
	if err != nil {
		return err
	}
	got, err := o.get(r, obj.GetNamespace(), obj.GetName())
	if err != nil {
		return err
	}
	return copyInto(obj, got)
}

func copyInto(dst, src runtime.Object) error {
	return scheme.Scheme.Convert(src, dst, nil)
}

func (o *Objects) get(r *resource, namespace, name string) (object, error) {
	rec, err := o.store.Get(r.key(namespace, name))
	if err != nil {
		return nil, storeErr(r, name, err)
	}
	return o.decode(r, rec)
}

// listResult is a list of objects and the resourceVersion it is consistent with.
type listResult struct {
	items []object
	rv    uint64
}

func (o *Objects) list(r *resource, namespace string, ls labels.Selector, fs fields.Selector) (listResult, error) {
	recs, rv, err := o.store.List(r.prefix(namespace))
	if err != nil {
		return listResult{}, apierrors.NewInternalError(err)
	}
	out := listResult{rv: rv}
	for _, rec := range recs {
		obj, err := o.decode(r, rec)
		if err != nil {
			return listResult{}, apierrors.NewInternalError(err)
		}
		if matches(r, obj, ls, fs) {
			out.items = append(out.items, obj)
		}
	}
	return out, nil
}

func matches(r *resource, obj object, ls labels.Selector, fs fields.Selector) bool {
	if ls != nil && !ls.Matches(labels.Set(obj.GetLabels())) {
		return false
	}
	if fs != nil && !fs.Matches(r.fieldSet(obj)) {
		return false
	}
	return true
}

// List fills list (e.g. *corev1.PodList) with the objects in namespace ("" for
// all) that match sel (nil for all).
func (o *Objects) List(_ context.Context, list runtime.Object, namespace string, sel labels.Selector) error {
	gvks, _, err := scheme.Scheme.ObjectKinds(list)
	if err != nil {
		return err
	}
	var r *resource
	for _, c := range o.reg.all {
		if c.gvk().Kind+"List" == gvks[0].Kind && c.gv == gvks[0].GroupVersion() {
			r = c
		}
	}
	if r == nil {
		return fmt.Errorf("kubeapi: %s is not served", gvks[0])
	}
	res, err := o.list(r, namespace, sel, nil)
	if err != nil {
		return err
	}
	return fillList(list, res)
}

func fillList(list runtime.Object, res listResult) error {
	items := make([]runtime.Object, len(res.items))
	for i, it := range res.items {
		items[i] = it
	}
	if err := meta.SetList(list, items); err != nil {
		return err
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return err
	}
	lm.SetResourceVersion(strconv.FormatUint(res.rv, 10))
	return nil
}

// Create stores a new object after defaulting and validation, and updates
// obj with what was stored.
func (o *Objects) Create(_ context.Context, obj Object) error {
	r, err := o.resourceOf(obj)
	if err != nil {
		return err
	}
	return o.create(r, obj, nil, false)
}

// create defaults and validates a new object, asks admit (if not nil) about
// the object as it will be stored, and stores it unless dryRun.
func (o *Objects) create(r *resource, obj object, admit func(object) error, dryRun bool) error {
	if obj.GetName() == "" && obj.GetGenerateName() != "" {
		obj.SetName(obj.GetGenerateName() + randSuffix())
	}
	if !r.namespaced {
		obj.SetNamespace("")
	}
	if obj.GetName() == "" {
		return invalid(r, "", field.ErrorList{field.Required(metaPath.Child("name"), "name or generateName is required")})
	}
	if r.namespaced {
		if err := o.namespaceWritable(obj.GetNamespace()); err != nil {
			return err
		}
	}
	obj.SetUID(types.UID(uuid.NewString()))
	obj.SetCreationTimestamp(metav1.NewTime(o.now().Truncate(time.Second)))
	obj.SetResourceVersion("")
	obj.SetDeletionTimestamp(nil)
	obj.SetManagedFields(nil)
	r.prepareCreate(obj)
	if errs := r.validate(obj, nil); len(errs) > 0 {
		return invalid(r, obj.GetName(), errs)
	}
	if admit != nil {
		if err := admit(obj); err != nil {
			return err
		}
	}
	if dryRun {
		return nil
	}
	data, err := encode(r, obj)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	rec, err := o.store.Put(r.key(obj.GetNamespace(), obj.GetName()), data, store.Precondition{MustNotExist: true})
	if err != nil {
		return storeErr(r, obj.GetName(), err)
	}
	obj.SetResourceVersion(strconv.FormatUint(rec.RV, 10))
	return nil
}

// namespaceWritable checks that ns exists and is not being deleted.
func (o *Objects) namespaceWritable(ns string) error {
	nsRes := o.reg.lookup(corev1.SchemeGroupVersion, "namespaces")
	if ns == "" {
		return apierrors.NewBadRequest("the namespace of the object must be set (use -n NAMESPACE or metadata.namespace)")
	}
	got, err := o.get(nsRes, "", ns)
	if err != nil {
		return err
	}
	if got.GetDeletionTimestamp() != nil {
		return apierrors.NewForbidden(nsRes.groupResource(), ns, fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
	}
	return nil
}

// Update replaces an object's spec and metadata (status is kept), with
// optimistic concurrency on obj's resourceVersion if it is set.
func (o *Objects) Update(_ context.Context, obj Object) error {
	r, err := o.resourceOf(obj)
	if err != nil {
		return err
	}
	return o.update(r, obj, false)
}

// UpdateStatus replaces an object's status (everything else is kept).
func (o *Objects) UpdateStatus(_ context.Context, obj Object) error {
	r, err := o.resourceOf(obj)
	if err != nil {
		return err
	}
	return o.update(r, obj, true)
}

func (o *Objects) update(r *resource, obj object, status bool) error {
	if !r.namespaced {
		obj.SetNamespace("")
	}
	rv, err := parseRV(obj.GetResourceVersion())
	if err != nil {
		return err
	}
	old, err := o.get(r, obj.GetNamespace(), obj.GetName())
	if err != nil {
		return err
	}
	if err := o.prepareUpdate(r, obj, old, status); err != nil {
		return err
	}
	return o.write(r, obj, rv)
}

// prepareUpdate carries server-owned fields from old into obj and validates.
func (o *Objects) prepareUpdate(r *resource, obj, old object, status bool) error {
	if status {
		if !r.hasSub("status") {
			return apierrors.NewNotFound(r.groupResource(), obj.GetName()+"/status")
		}
		r.prepareStatus(obj, old)
	} else {
		r.prepareUpdate(obj, old)
		// Metadata the server owns.
		obj.SetUID(old.GetUID())
		obj.SetCreationTimestamp(old.GetCreationTimestamp())
		obj.SetDeletionTimestamp(old.GetDeletionTimestamp())
		obj.SetDeletionGracePeriodSeconds(old.GetDeletionGracePeriodSeconds())
	}
	if errs := r.validate(obj, old); len(errs) > 0 {
		return invalid(r, obj.GetName(), errs)
	}
	return nil
}

// write stores obj over the live object, checking rv if non-zero.
func (o *Objects) write(r *resource, obj object, rv uint64) error {
	data, err := encode(r, obj)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	rec, err := o.store.Put(r.key(obj.GetNamespace(), obj.GetName()), data, store.Precondition{MustExist: true, RV: rv})
	if err != nil {
		return storeErr(r, obj.GetName(), err)
	}
	obj.SetResourceVersion(strconv.FormatUint(rec.RV, 10))
	return nil
}

// deleteOptions says how to delete.
type deleteOptions struct {
	// GracePeriodSeconds overrides the object's grace period; 0 deletes at once.
	GracePeriodSeconds *int64
	// ResourceVersion and UID are preconditions when set.
	ResourceVersion string
	UID             types.UID
}

// Delete deletes the object named by obj's namespace and name, on the
// precondition that its UID is obj's (if set). Pods bound to a node are
// deleted gracefully: they get a deletionTimestamp and the node removes them
// once their containers have stopped; gracePeriodSeconds 0 removes at once.
func (o *Objects) Delete(_ context.Context, obj Object, gracePeriodSeconds *int64) error {
	r, err := o.resourceOf(obj)
	if err != nil {
		return err
	}
	_, err = o.delete(r, obj.GetNamespace(), obj.GetName(), deleteOptions{GracePeriodSeconds: gracePeriodSeconds, UID: obj.GetUID()})
	return err
}

func (o *Objects) delete(r *resource, namespace, name string, opts deleteOptions) (object, error) {
	cur, err := o.get(r, namespace, name)
	if err != nil {
		return nil, err
	}
	if opts.UID != "" && opts.UID != cur.GetUID() {
		return nil, apierrors.NewConflict(r.groupResource(), name, fmt.Errorf("precondition failed: UID in precondition: %s, UID in object meta: %s", opts.UID, cur.GetUID()))
	}
	rv, err := parseRV(opts.ResourceVersion)
	if err != nil {
		return nil, err
	}
	if rv == 0 {
		rv, _ = parseRV(cur.GetResourceVersion())
	}
	if grace, graceful := gracePeriod(r, cur, opts); graceful {
		if cur.GetDeletionTimestamp() == nil {
			now := metav1.NewTime(o.now())
			cur.SetDeletionTimestamp(&now)
			cur.SetDeletionGracePeriodSeconds(&grace)
			if err := o.write(r, cur, rv); err != nil {
				return nil, err
			}
		}
		return cur, nil
	}
	if _, err := o.store.Delete(r.key(namespace, name), store.Precondition{RV: rv}); err != nil {
		return nil, storeErr(r, name, err)
	}
	return cur, nil
}

// gracePeriod decides whether a delete only marks the object (graceful) or
// removes it. Pods bound to a node are marked, and the node removes them with
// a zero grace period once their containers are gone; namespaces are marked,
// and the namespace controller removes them with a zero grace period once
// they are empty.
func gracePeriod(r *resource, cur object, opts deleteOptions) (int64, bool) {
	zero := opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds == 0
	switch pod, _ := cur.(*corev1.Pod); {
	case r.name == "namespaces":
		return 0, !(zero && cur.GetDeletionTimestamp() != nil)
	case pod != nil && pod.Spec.NodeName != "" && !zero:
		grace := int64(30)
		if pod.Spec.TerminationGracePeriodSeconds != nil {
			grace = *pod.Spec.TerminationGracePeriodSeconds
		}
		if opts.GracePeriodSeconds != nil {
			grace = *opts.GracePeriodSeconds
		}
		return grace, true
	}
	return 0, false
}

// Watch is a stream of decoded object changes.
type Watch struct {
	o *Objects
	r *resource
	w *store.Watcher
}

// WatchEvent is one decoded change.
type WatchEvent struct {
	Type   store.EventType
	Object Object
}

func (o *Objects) watch(r *resource, namespace string, fromRV uint64) (*Watch, error) {
	w, err := o.store.Watch(r.prefix(namespace), fromRV)
	if err != nil {
		return nil, storeErr(r, "", err)
	}
	return &Watch{o: o, r: r, w: w}, nil
}

// Next blocks for the next change.
func (w *Watch) Next(ctx context.Context) (WatchEvent, error) {
	ev, err := w.w.Next(ctx)
	if err != nil {
		return WatchEvent{}, err
	}
	obj, err := w.o.decode(w.r, ev.Record)
	if err != nil {
		return WatchEvent{}, err
	}
	return WatchEvent{Type: ev.Type, Object: obj}, nil
}

// Close ends the watch.
func (w *Watch) Close() { w.w.Close() }

func randSuffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 5)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// Notify sends on kick (without blocking) after every change to objects of
// resource (plural name), until ctx is done. Controllers use it as their
// level trigger: a kick means "something changed, reconcile".
func (o *Objects) Notify(ctx context.Context, resourceName string, kick chan<- struct{}) {
	var r *resource
	for _, c := range o.reg.all {
		if c.name == resourceName {
			r = c
		}
	}
	if r == nil {
		panic("kubeapi: Notify on unserved resource " + resourceName)
	}
	for ctx.Err() == nil {
		_, rv, err := o.store.List(r.prefix(""))
		var w *store.Watcher
		if err == nil {
			w, err = o.store.Watch(r.prefix(""), rv)
		}
		if err != nil {
			t := time.NewTimer(time.Second)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		for {
			if _, err := w.Next(ctx); err != nil {
				break
			}
			select {
			case kick <- struct{}{}:
			default:
			}
		}
		w.Close()
	}
}
