package objects

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/mycelfabric/mycel/workloadplane/store"
)

// Store is the replicated store objects are kept in (workloadplane/store).
type Store interface {
	// Get returns the live record under key or store.ErrNotFound.
	Get(key string) (store.Record, error)
	// Tombstone returns the tombstone under key (with the deleted value)
	// or store.ErrNotFound.
	Tombstone(key string) (store.Record, error)
	// List returns live records under prefix and the resourceVersion they
	// are consistent with.
	List(prefix string) ([]store.Record, uint64, error)
	// ListAfter passes the live records under prefix after a key to keep
	// until it returns false, and counts those left (store.ListAfter).
	ListAfter(prefix, after string, keep func(store.Record) (bool, error)) (uint64, int64, error)
	// Put writes a value under the precondition.
	Put(key string, value []byte, pre store.Precondition) (store.Record, error)
	// Delete writes a tombstone under the precondition.
	Delete(key string, pre store.Precondition) (store.Record, error)
	// Watch follows changes under prefix after fromRV, or fails with
	// store.ErrExpired.
	Watch(prefix string, fromRV uint64) (*store.Watcher, error)
	// Await waits until ok holds of what key holds (store.Store.Await).
	Await(ctx context.Context, key string, ok func(rec store.Record, exists bool) bool) bool
	// Replica identifies this replica's resourceVersions.
	Replica() uint64
}

// Objects is the typed object layer over the store: defaults, validation,
// server-owned fields, resourceVersions and optimistic concurrency. The API
// and the in-process controllers both write through it, so every object in
// the store has passed the same checks. Admission is the API's job, between
// Collection.PrepareCreate (or PrepareUpdate) and the write: controllers are
// trusted system components. Errors are Kubernetes API errors
// (k8s.io/apimachinery/pkg/api/errors).
type Objects struct {
	store Store
	// builtin holds the built-in resources; reg what is served now: those
	// and the custom resources of the CRDs (ServeCustom).
	builtin *registry
	reg     atomic.Pointer[registry]
	now     func() time.Time
	sealer  Sealer
	events  eventCache
}

// Sealer encrypts the stored documents of sealed resources (Secrets), so a
// store file alone does not reveal them. securityplane/datakey's Ring is
// one.
type Sealer interface {
	// Seal encrypts and authenticates plaintext together with ad (the
	// store key: a sealed value copied under another key does not open).
	Seal(plaintext, ad []byte) ([]byte, error)
	// Open returns what Seal sealed with the same ad, or an error if the
	// value was altered or sealed with a key this sealer does not hold.
	Open(sealed, ad []byte) ([]byte, error)
}

// Config configures the object layer.
type Config struct {
	// Now is the clock of creation and deletion timestamps; nil means
	// time.Now.
	Now func() time.Time
	// Sealer seals Secrets in the store. Without one, writing or reading a
	// Secret fails with an internal error that says so.
	Sealer Sealer
}

// New returns the object layer over s, serving every built-in resource.
func New(s Store, cfg Config) *Objects {
	reg, err := newRegistry(resources())
	if err != nil {
		panic(err) // the built-in list is wrong: a programming error every test sees
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	o := &Objects{store: s, builtin: reg, now: cfg.Now, sealer: cfg.Sealer}
	o.reg.Store(reg)
	return o
}

// Resources lists the served resources in discovery order.
func (o *Objects) Resources() []*Resource { return o.reg.Load().all }

// GroupVersions lists the served group versions in discovery order.
func (o *Objects) GroupVersions() []schema.GroupVersion { return o.reg.Load().groupVersions() }

// Lookup finds a served resource by group version and plural name; nil if
// it is not served.
func (o *Objects) Lookup(gv schema.GroupVersion, plural string) *Resource {
	return o.reg.Load().byGVR[gv.WithResource(plural)]
}

// Scheme knows every served type and the meta types around them.
func (o *Objects) Scheme() *runtime.Scheme { return o.builtin.scheme }

// Codecs encode and decode served types (JSON, YAML, protobuf).
func (o *Objects) Codecs() serializer.CodecFactory { return o.builtin.codecs }

// ResourceOf finds the served resource of a typed object or list.
func (o *Objects) ResourceOf(obj runtime.Object) (*Resource, error) {
	reg := o.reg.Load()
	gvks, _, err := reg.scheme.ObjectKinds(obj)
	if err != nil {
		return nil, err
	}
	if r := reg.byGVK[gvks[0]]; r != nil {
		return r, nil
	}
	if r := reg.byList[gvks[0]]; r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("objects: %s is not served", gvks[0])
}

// In returns the collection of r's objects.
func (o *Objects) In(r *Resource) Collection { return Collection{o: o, r: r} }

// Collection reads and writes the objects of one resource. The API serves
// requests through it; Get, List, Create and the other typed methods of
// Objects are shorthands for it.
type Collection struct {
	o *Objects
	r *Resource
	// strict writes check a caller's preconditions where the key's writes
	// meet (store.Precondition.Strict): the API's, for its clients.
	strict bool
}

// Strict is c for writes on a client's behalf: a create, and a write or
// delete at a resourceVersion the client gave, are checked by the object's
// owner while nodes are connected (replica.Routed), so a stale
// resourceVersion is 409 and a second create of a name is 409
// AlreadyExists whichever node the request reaches.
func (c Collection) Strict() Collection {
	c.strict = true
	return c
}

// Get returns the object namespace/name.
func (c Collection) Get(namespace, name string) (Object, error) {
	rec, err := c.o.store.Get(c.r.key(namespace, name))
	if err != nil {
		return nil, storeErr(c.r, name, err)
	}
	return c.decode(rec.Value, c.o.recordVersion(rec), rec.Key)
}

// errNoSealer is what reading or writing a sealed resource fails with on an
// object layer without a sealer.
var errNoSealer = errors.New("objects: this node has no data key to seal or open Secrets with")

// sealedDoc is how a sealed document is stored: still a JSON document, as
// the store and replication require, holding nothing but ciphertext.
type sealedDoc struct {
	Sealed []byte `json:"sealed"`
}

// Gone reports whether this replica knows that the object namespace/name
// of UID uid was deleted: its key holds a tombstone of that UID, or an
// object of another UID. An object never seen here is not known to be
// gone: it may not have been replicated yet.
func (c Collection) Gone(namespace, name string, uid types.UID) bool {
	key := c.r.key(namespace, name)
	if rec, err := c.o.store.Get(key); err == nil {
		obj, err := c.decode(rec.Value, c.o.recordVersion(rec), key)
		return err == nil && obj.GetUID() != uid
	}
	rec, err := c.o.store.Tombstone(key)
	if err != nil || rec.Value == nil {
		return false
	}
	obj, err := c.decode(rec.Value, c.o.recordVersion(rec), key)
	return err == nil && obj.GetUID() == uid
}

// decode turns a stored document into a typed object carrying rv.
func (c Collection) decode(value []byte, rv ResourceVersion, key string) (Object, error) {
	if c.r.sealed {
		if c.o.sealer == nil {
			return nil, apierrors.NewInternalError(errNoSealer)
		}
		var doc sealedDoc
		err := json.Unmarshal(value, &doc)
		if err == nil {
			value, err = c.o.sealer.Open(doc.Sealed, []byte(key))
		}
		if err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("objects: open stored %s: %w", key, err))
		}
	}
	obj := c.r.newObj()
	if err := json.Unmarshal(value, obj); err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("objects: stored %s is corrupt: %w", key, err))
	}
	obj.SetResourceVersion(rv.String())
	c.r.setTypeMeta(obj)
	return obj, nil
}

// encode serializes obj for the store, sealed if its resource is; the
// resourceVersion is the store's and is not kept in the document.
func (c Collection) encode(obj Object) ([]byte, error) {
	rv := obj.GetResourceVersion()
	obj.SetResourceVersion("")
	c.r.setTypeMeta(obj)
	data, err := json.Marshal(obj)
	obj.SetResourceVersion(rv)
	if err != nil || !c.r.sealed {
		return data, err
	}
	if c.o.sealer == nil {
		return nil, errNoSealer
	}
	sealed, err := c.o.sealer.Seal(data, []byte(c.r.key(obj.GetNamespace(), obj.GetName())))
	if err != nil {
		return nil, err
	}
	return json.Marshal(sealedDoc{Sealed: sealed})
}

// List is a list of objects and the resourceVersion it is consistent with.
type List struct {
	Items           []Object
	ResourceVersion ResourceVersion
}

// Into fills a typed list (e.g. *corev1.PodList).
func (l List) Into(list runtime.Object) error {
	items := make([]runtime.Object, len(l.Items))
	for i, it := range l.Items {
		items[i] = it
	}
	if err := meta.SetList(list, items); err != nil {
		return err
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return err
	}
	lm.SetResourceVersion(l.ResourceVersion.String())
	return nil
}

// List returns the objects in namespace ("" for all) that match both
// selectors (nil matches all).
func (c Collection) List(namespace string, ls labels.Selector, fs fields.Selector) (List, error) {
	recs, rv, err := c.o.store.List(c.r.prefix(namespace))
	if err != nil {
		return List{}, apierrors.NewInternalError(err)
	}
	out := List{ResourceVersion: c.o.listVersion(rv)}
	for _, rec := range recs {
		obj, err := c.decode(rec.Value, c.o.recordVersion(rec), rec.Key)
		if err != nil {
			return List{}, err
		}
		if c.r.Matches(obj, ls, fs) {
			out.Items = append(out.Items, obj)
		}
	}
	return out, nil
}

// ListPage returns, in namespace/name order, up to limit (0: no limit)
// objects of namespace ("" for all) that match both selectors and come
// after the object named after ("namespace/name"; "" for the first page).
// It decodes only what it reads for the page, so a page costs its own size,
// not the collection's; left is how many objects, matching or not, come
// after it.
func (c Collection) ListPage(namespace string, ls labels.Selector, fs fields.Selector, after string, limit int64) (List, int64, error) {
	var start string
	if after != "" {
		ns, name, _ := strings.Cut(after, "/")
		start = c.r.key(ns, name)
	}
	var out List
	rv, left, err := c.o.store.ListAfter(c.r.prefix(namespace), start, func(rec store.Record) (bool, error) {
		obj, err := c.decode(rec.Value, c.o.recordVersion(rec), rec.Key)
		if err != nil {
			return false, err
		}
		if c.r.Matches(obj, ls, fs) {
			out.Items = append(out.Items, obj)
		}
		return limit <= 0 || int64(len(out.Items)) < limit, nil
	})
	if err != nil {
		var se apierrors.APIStatus
		if !errors.As(err, &se) {
			err = apierrors.NewInternalError(err)
		}
		return List{}, 0, err
	}
	out.ResourceVersion = c.o.listVersion(rv)
	return out, left, nil
}

// PrepareCreate makes obj a new object as it will be stored: a name from
// generateName, server-owned metadata, defaults, initial status; it checks
// that the namespace accepts new objects and validates. Insert stores it.
func (c Collection) PrepareCreate(obj Object) error {
	r := c.r
	if obj.GetName() == "" && obj.GetGenerateName() != "" {
		obj.SetName(obj.GetGenerateName() + randSuffix())
	}
	if !r.Namespaced {
		obj.SetNamespace("")
	}
	if obj.GetName() == "" {
		return invalid(r, "", field.ErrorList{field.Required(metaPath.Child("name"), "name or generateName is required")})
	}
	if r.terminating != "" {
		return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusMethodNotAllowed,
			Reason: metav1.StatusReasonMethodNotAllowed, Message: r.terminating}}
	}
	if r.Namespaced {
		if err := c.o.namespaceWritable(obj.GetNamespace()); err != nil {
			return err
		}
	}
	obj.SetUID(types.UID(uuid.NewString()))
	obj.SetCreationTimestamp(metav1.NewTime(c.o.now().Truncate(time.Second)))
	obj.SetResourceVersion("")
	obj.SetDeletionTimestamp(nil)
	obj.SetManagedFields(nil)
	r.prepareCreate(obj)
	if errs := r.validate(obj, nil); len(errs) > 0 {
		return invalid(r, obj.GetName(), errs)
	}
	return nil
}

// Insert stores an object PrepareCreate made, failing if one of its name
// exists, and sets its resourceVersion.
func (c Collection) Insert(obj Object) error {
	data, err := c.encode(obj)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	rec, err := c.o.store.Put(c.r.key(obj.GetNamespace(), obj.GetName()), data, store.Precondition{MustNotExist: true, Strict: c.strict})
	if err != nil {
		return storeErr(c.r, obj.GetName(), err)
	}
	obj.SetResourceVersion(c.o.recordVersion(rec).String())
	return nil
}

// namespaceWritable checks that ns exists and is not being deleted.
func (o *Objects) namespaceWritable(ns string) error {
	if ns == "" {
		return apierrors.NewBadRequest("the namespace of the object must be set (use -n NAMESPACE or metadata.namespace)")
	}
	nsRes := o.Lookup(corev1.SchemeGroupVersion, "namespaces")
	got, err := o.In(nsRes).Get("", ns)
	if err != nil {
		return err
	}
	if got.GetDeletionTimestamp() != nil {
		return apierrors.NewForbidden(nsRes.GroupResource(), ns, fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
	}
	return nil
}

// PrepareUpdate carries server-owned fields from old (the stored object)
// into obj and validates it: for a status update (status true) obj becomes
// old with obj's status; otherwise obj keeps old's status and server-owned
// metadata. Write stores it.
func (c Collection) PrepareUpdate(obj, old Object, status bool) error {
	r := c.r
	if !r.Namespaced {
		obj.SetNamespace("")
	}
	if status {
		if !r.HasSub("status") {
			return apierrors.NewNotFound(r.GroupResource(), obj.GetName()+"/status")
		}
		r.prepareStatus(obj, old)
	} else {
		obj.SetUID(old.GetUID()) // before the defaults, which may derive from it
		r.prepareUpdate(obj, old)
		obj.SetCreationTimestamp(old.GetCreationTimestamp())
		obj.SetDeletionTimestamp(old.GetDeletionTimestamp())
		obj.SetDeletionGracePeriodSeconds(old.GetDeletionGracePeriodSeconds())
	}
	if errs := r.validate(obj, old); len(errs) > 0 {
		return invalid(r, obj.GetName(), errs)
	}
	return nil
}

// Write stores obj over the live object, on the precondition that the live
// object is at resourceVersion rv (if non-zero), and sets obj's
// resourceVersion. An object being deleted that this leaves without
// finalizers and with no grace period left is removed, as kube-apiserver
// does, unless a controller finishes its resource's deletions (namespaces,
// CRDs).
func (c Collection) Write(obj Object, rv ResourceVersion) error {
	data, err := c.encode(obj)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	pre, ok := c.o.precondition(rv)
	if !ok {
		return storeErr(c.r, obj.GetName(), store.ErrConflict)
	}
	pre.MustExist, pre.Strict = true, c.strict && pre.Version != 0
	key := c.r.key(obj.GetNamespace(), obj.GetName())
	rec, err := c.o.store.Put(key, data, pre)
	if err != nil {
		return storeErr(c.r, obj.GetName(), err)
	}
	obj.SetResourceVersion(c.o.recordVersion(rec).String())
	if g := obj.GetDeletionGracePeriodSeconds(); !c.r.finishes && obj.GetDeletionTimestamp() != nil && len(obj.GetFinalizers()) == 0 && (g == nil || *g == 0) {
		if _, err := c.o.store.Delete(key, store.Precondition{RV: rec.RV}); err != nil && !errors.Is(err, store.ErrConflict) {
			return storeErr(c.r, obj.GetName(), err)
		}
	}
	return nil
}

// update reads the stored object, prepares obj over it and writes it, with
// obj's resourceVersion (if set) as the precondition.
func (c Collection) update(obj Object, status bool) error {
	if !c.r.Namespaced {
		obj.SetNamespace("")
	}
	rv, err := ParseResourceVersion(obj.GetResourceVersion())
	if err != nil {
		return err
	}
	c.Await(context.Background(), obj.GetNamespace(), obj.GetName(), rv)
	old, err := c.Get(obj.GetNamespace(), obj.GetName())
	if err != nil {
		return err
	}
	if err := c.PrepareUpdate(obj, old, status); err != nil {
		return err
	}
	return c.Write(obj, rv)
}

// DeleteOptions say how to delete.
type DeleteOptions struct {
	// GracePeriodSeconds overrides the object's grace period; 0 deletes at
	// once.
	GracePeriodSeconds *int64
	// ResourceVersion and UID are preconditions when set.
	ResourceVersion string
	UID             types.UID
	// Propagation says what becomes of the object's dependents: Orphan and
	// Foreground keep the object, marked, with the orphan or
	// foregroundDeletion finalizer until the garbage collector has
	// released or deleted them; Background (and "" for an object without
	// those finalizers) deletes it at once and them afterwards.
	Propagation metav1.DeletionPropagation
}

// withPropagation sets the garbage collector's finalizers of obj for
// policy, as kube-apiserver does; it reports whether they changed.
func withPropagation(obj Object, policy metav1.DeletionPropagation) bool {
	if policy == "" {
		return false
	}
	fins := slices.DeleteFunc(slices.Clone(obj.GetFinalizers()), func(f string) bool {
		return f == metav1.FinalizerOrphanDependents || f == metav1.FinalizerDeleteDependents
	})
	switch policy {
	case metav1.DeletePropagationOrphan:
		fins = append(fins, metav1.FinalizerOrphanDependents)
	case metav1.DeletePropagationForeground:
		fins = append(fins, metav1.FinalizerDeleteDependents)
	}
	if slices.Equal(fins, obj.GetFinalizers()) {
		return false
	}
	obj.SetFinalizers(fins)
	return true
}

// Delete deletes namespace/name and returns the object as it was, or as it
// is now marked for deletion: resources with a graceful-delete rule (bound
// pods, namespaces) get a deletionTimestamp, and whoever finishes their
// deletion removes them later with a zero grace period; an object with
// finalizers (or given some by opts.Propagation) is marked with a zero
// grace period and removed when an update leaves it none (Write).
//
// Without a resourceVersion precondition a delete does not fail because
// another write (an agent's status update) landed between its read and
// its write: it reads again and retries, as kube-apiserver's
// GuaranteedUpdate does.
func (c Collection) Delete(namespace, name string, opts DeleteOptions) (Object, error) {
	rv, err := ParseResourceVersion(opts.ResourceVersion)
	if err != nil {
		return nil, err
	}
	at := c
	at.strict = c.strict && !rv.IsZero() // only the caller's resourceVersion
	for attempt := 1; ; attempt++ {
		obj, err := at.deleteAt(namespace, name, opts, rv)
		var lost racedErr
		if !errors.As(err, &lost) {
			return obj, err
		}
		if !rv.IsZero() || attempt == maxDeleteAttempts {
			return nil, lost.error
		}
	}
}

// maxDeleteAttempts bounds the retries of a delete whose write keeps
// losing races with others.
const maxDeleteAttempts = 20

// racedErr is the Conflict of a write that lost a race with another.
type racedErr struct{ error }

// raced marks a Conflict of err as a lost race.
func raced(err error) error {
	if apierrors.IsConflict(err) {
		return racedErr{err}
	}
	return err
}

// deleteAt deletes namespace/name once, at resourceVersion rv or, if zero,
// at the version it reads; a write that lost a race is a racedErr.
func (c Collection) deleteAt(namespace, name string, opts DeleteOptions, rv ResourceVersion) (Object, error) {
	r := c.r
	c.Await(context.Background(), namespace, name, rv)
	cur, err := c.Get(namespace, name)
	if err != nil {
		return nil, err
	}
	if opts.UID != "" && opts.UID != cur.GetUID() {
		return nil, apierrors.NewConflict(r.GroupResource(), name, fmt.Errorf("precondition failed: UID in precondition: %s, UID in object meta: %s", opts.UID, cur.GetUID()))
	}
	if rv.IsZero() {
		rv = MustParseResourceVersion(cur.GetResourceVersion())
	}
	changed := withPropagation(cur, opts.Propagation)
	mark := func(grace int64) (Object, error) {
		if cur.GetDeletionTimestamp() == nil {
			now := metav1.NewTime(c.o.now())
			cur.SetDeletionTimestamp(&now)
			changed = true
		}
		if g := cur.GetDeletionGracePeriodSeconds(); g == nil || grace < *g { // a grace period only shortens
			cur.SetDeletionGracePeriodSeconds(&grace)
			changed = true
		}
		if changed {
			if err := c.Write(cur, rv); err != nil {
				return nil, raced(err)
			}
		}
		return cur, nil
	}
	if r.graceful != nil {
		if grace, ok := r.graceful(cur, opts); ok {
			if cur.GetDeletionTimestamp() != nil && !changed {
				return cur, nil // already under way
			}
			return mark(grace)
		}
	}
	if len(cur.GetFinalizers()) > 0 {
		return mark(0)
	}
	pre, ok := c.o.precondition(rv)
	if !ok {
		return nil, storeErr(r, name, store.ErrConflict)
	}
	pre.Strict = c.strict && pre.Version != 0
	if _, err := c.o.store.Delete(r.key(namespace, name), pre); err != nil {
		return nil, raced(storeErr(r, name, err))
	}
	return cur, nil
}

// zeroGrace reports whether opts ask to remove at once.
func zeroGrace(opts DeleteOptions) bool {
	return opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds == 0
}

// storeErr maps store errors to API errors for r/name.
func storeErr(r *Resource, name string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return apierrors.NewNotFound(r.GroupResource(), name)
	case errors.Is(err, store.ErrExists):
		return apierrors.NewAlreadyExists(r.GroupResource(), name)
	case errors.Is(err, store.ErrConflict):
		return apierrors.NewConflict(r.GroupResource(), name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	case errors.Is(err, store.ErrExpired):
		return apierrors.NewResourceExpired("too old resource version: the watch must be restarted from a fresh list")
	}
	return apierrors.NewInternalError(err)
}

func invalid(r *Resource, name string, errs field.ErrorList) error {
	return apierrors.NewInvalid(r.GVK().GroupKind(), name, errs)
}

func randSuffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 5)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// Gone reports whether the object namespace/name of r with UID uid is
// known here to have been deleted (Collection.Gone).
func (o *Objects) Gone(r *Resource, namespace, name string, uid types.UID) bool {
	return o.In(r).Gone(namespace, name, uid)
}

// Get reads the object named by obj's namespace and name into obj.
func (o *Objects) Get(_ context.Context, obj Object) error {
	r, err := o.ResourceOf(obj)
	if err != nil {
		return err
	}
	got, err := o.In(r).Get(obj.GetNamespace(), obj.GetName())
	if err != nil {
		return err
	}
	reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(got).Elem())
	return nil
}

// List fills list (e.g. *corev1.PodList) with the objects in namespace ("" for
// all) that match sel (nil for all).
func (o *Objects) List(_ context.Context, list runtime.Object, namespace string, sel labels.Selector) error {
	r, err := o.ResourceOf(list)
	if err != nil {
		return err
	}
	res, err := o.In(r).List(namespace, sel, nil)
	if err != nil {
		return err
	}
	return res.Into(list)
}

// Create stores a new object after defaulting and validation, and updates
// obj with what was stored.
func (o *Objects) Create(_ context.Context, obj Object) error {
	r, err := o.ResourceOf(obj)
	if err != nil {
		return err
	}
	c := o.In(r)
	if err := c.PrepareCreate(obj); err != nil {
		return err
	}
	return c.Insert(obj)
}

// Update replaces an object's spec and metadata (status is kept), with
// optimistic concurrency on obj's resourceVersion if it is set.
func (o *Objects) Update(_ context.Context, obj Object) error {
	r, err := o.ResourceOf(obj)
	if err != nil {
		return err
	}
	return o.In(r).update(obj, false)
}

// UpdateStatus replaces an object's status (everything else is kept).
func (o *Objects) UpdateStatus(_ context.Context, obj Object) error {
	r, err := o.ResourceOf(obj)
	if err != nil {
		return err
	}
	return o.In(r).update(obj, true)
}

// Delete deletes the object named by obj's namespace and name, on the
// precondition that its UID is obj's (if set); see Collection.Delete for
// graceful deletion.
func (o *Objects) Delete(ctx context.Context, obj Object, gracePeriodSeconds *int64) error {
	return o.DeleteWith(ctx, obj, DeleteOptions{GracePeriodSeconds: gracePeriodSeconds})
}

// DeleteWith deletes the object named by obj's namespace and name with
// opts, on the precondition that its UID is obj's (if set).
func (o *Objects) DeleteWith(_ context.Context, obj Object, opts DeleteOptions) error {
	r, err := o.ResourceOf(obj)
	if err != nil {
		return err
	}
	opts.UID = obj.GetUID()
	_, err = o.In(r).Delete(obj.GetNamespace(), obj.GetName(), opts)
	return err
}
