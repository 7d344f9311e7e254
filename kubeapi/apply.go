package kubeapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdopenapi "k8s.io/apiextensions-apiserver/pkg/controller/openapi/builder"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured/unstructuredscheme"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/yaml"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// maxFieldManager is kube-apiserver's bound on a field manager's name.
const maxFieldManager = 128

// fieldManagers track metadata.managedFields and run server-side apply with
// apimachinery's managedfields (structured-merge-diff), typed by the
// served OpenAPI models, one FieldManager per kind, as kube-apiserver does.
type fieldManagers struct {
	objs *objects.Objects
	tc   managedfields.TypeConverter
	mu   sync.Mutex
	fms  map[schema.GroupVersionKind]fieldManager
}

// fieldManager is a kind's, for the custom resources served at registry
// generation gen (a CRD's schema may change).
type fieldManager struct {
	*managedfields.FieldManager
	gen uint64
}

// newFieldManagers types the built-in kinds by the definitions of sw, the
// served OpenAPI v2 document.
func newFieldManagers(o *objects.Objects, sw *spec.Swagger) (*fieldManagers, error) {
	defs := make(map[string]*spec.Schema, len(sw.Definitions))
	for name, s := range sw.Definitions {
		defs[name] = &s
	}
	tc, err := managedfields.NewTypeConverter(defs, false)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: field management types: %w", err)
	}
	return &fieldManagers{objs: o, tc: tc, fms: map[schema.GroupVersionKind]fieldManager{}}, nil
}

func (f *fieldManagers) of(res *objects.Resource) (*managedfields.FieldManager, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gvk := res.GVK()
	crds, gen := f.objs.ServedCRDs()
	if fm, ok := f.fms[gvk]; ok && (!res.Custom() || fm.gen == gen) {
		return fm.FieldManager, nil
	}
	var fm *managedfields.FieldManager
	var err error
	if res.Custom() {
		// Custom resources: typed by their CRD's structural schema, as
		// kube-apiserver does, so list-type, map-type and
		// x-kubernetes-list-map-keys merge as declared.
		var tc managedfields.TypeConverter
		if tc, err = crdTypeConverter(crds, gvk); err == nil {
			fm, err = managedfields.NewDefaultCRDFieldManager(tc, noConversion{},
				unstructuredscheme.NewUnstructuredDefaulter(), unstructuredscheme.NewUnstructuredCreator(), gvk, gvk.GroupVersion(), "", nil)
		}
	} else {
		sc := f.objs.Scheme()
		fm, err = managedfields.NewDefaultFieldManager(f.tc, sc, sc, sc, gvk, gvk.GroupVersion(), "", nil)
	}
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("field manager for %s: %w", gvk, err))
	}
	f.fms[gvk] = fieldManager{fm, gen}
	return fm, nil
}

// crdTypeConverter types the custom resources of gvk by the OpenAPI models
// apiextensions-apiserver builds from their CRD's schemas, every version
// merged, as its handler does for apply.
func crdTypeConverter(crds []*apiextensionsv1.CustomResourceDefinition, gvk schema.GroupVersionKind) (managedfields.TypeConverter, error) {
	i := slices.IndexFunc(crds, func(c *apiextensionsv1.CustomResourceDefinition) bool {
		return c.Spec.Group == gvk.Group && c.Spec.Names.Kind == gvk.Kind
	})
	if i < 0 {
		return nil, fmt.Errorf("no served CRD defines %s", gvk)
	}
	crd := crds[i]
	var docs []*spec3.OpenAPI
	for _, v := range crd.Spec.Versions {
		d, err := crdopenapi.BuildOpenAPIV3(crd, v.Name, crdopenapi.Options{})
		if err != nil {
			return nil, err
		}
		docs = append(docs, d)
	}
	merged, err := crdopenapi.MergeSpecsV3(docs...)
	if err != nil {
		return nil, err
	}
	return managedfields.NewTypeConverter(merged.Components.Schemas, crd.Spec.PreserveUnknownFields)
}

// noConversion converts custom objects between versions as a CRD's
// conversion None does: only apiVersion changes.
type noConversion struct{}

func (noConversion) Convert(in, out, _ any) error {
	u, ok := in.(*unstructured.Unstructured)
	o, ok2 := out.(*unstructured.Unstructured)
	if !ok || !ok2 {
		return fmt.Errorf("kubeapi: cannot convert %T to %T", in, out)
	}
	o.Object = u.DeepCopy().Object
	return nil
}

func (noConversion) ConvertToVersion(in runtime.Object, gv runtime.GroupVersioner) (runtime.Object, error) {
	u, ok := in.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("kubeapi: cannot convert %T", in)
	}
	out := u.DeepCopy()
	if gvk, ok := gv.KindForGroupVersionKinds([]schema.GroupVersionKind{u.GroupVersionKind()}); ok {
		out.SetGroupVersionKind(gvk)
	}
	return out, nil
}

func (noConversion) ConvertFieldLabel(_ schema.GroupVersionKind, label, value string) (string, string, error) {
	return label, value, nil
}

// manager is the request's field manager: ?fieldManager, or the client's
// name from its User-Agent, as kube-apiserver derives it.
func manager(r *http.Request) string {
	if m := r.URL.Query().Get("fieldManager"); m != "" {
		return m
	}
	m, _, _ := strings.Cut(r.UserAgent(), "/")
	if len(m) > maxFieldManager {
		m = m[:maxFieldManager]
	}
	return m
}

// trackUpdate records in obj's managedFields the fields this create
// (old nil) or update changes, owned by the request's manager.
func (s *Server) trackUpdate(r *http.Request, res *objects.Resource, old, obj objects.Object) error {
	fm, err := s.fields.of(res)
	if err != nil {
		return err
	}
	live := old
	if live == nil {
		live = res.New()
	}
	out := fm.UpdateNoErrors(live, obj, manager(r))
	if o, ok := out.(objects.Object); ok {
		obj.SetManagedFields(o.GetManagedFields())
	}
	return nil
}

func isApply(r *http.Request) bool {
	mt := types.PatchType(mediaType(r.Header.Get("Content-Type")))
	return r.Method == http.MethodPatch && (mt == types.ApplyYAMLPatchType || mt == types.ApplyCBORPatchType)
}

// serveApply answers a server-side apply: it creates the object if absent,
// merges the applied configuration into the live object under the
// manager's field ownership, and answers 409 with the conflicting fields
// and their managers unless ?force=true.
func (s *Server) serveApply(w http.ResponseWriter, r *http.Request, req *request, body []byte) error {
	if types.PatchType(mediaType(r.Header.Get("Content-Type"))) == types.ApplyCBORPatchType {
		return apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", req.res.GroupResource(), "",
			"CBOR apply patches are not supported: send application/apply-patch+yaml", 0, false)
	}
	q := r.URL.Query()
	mgr := q.Get("fieldManager")
	if mgr == "" {
		return apierrors.NewBadRequest("fieldManager is required for apply requests (kubectl sets it; use ?fieldManager=NAME)")
	}
	if len(mgr) > maxFieldManager {
		return apierrors.NewBadRequest(fmt.Sprintf("fieldManager must be at most %d characters", maxFieldManager))
	}
	js, err := yaml.YAMLToJSON(body)
	if err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("the apply patch is not valid YAML: %v", err))
	}
	applied := &unstructured.Unstructured{}
	if err := applied.UnmarshalJSON(js); err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("the apply patch is not an object: %v", err))
	}
	if gvk := applied.GroupVersionKind(); gvk != req.res.GVK() {
		return apierrors.NewBadRequest(fmt.Sprintf("the apply patch is a %s, but this URL takes %s", gvk, req.res.GVK()))
	}
	if applied.GetName() != req.name {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", applied.GetName(), req.name))
	}
	if req.res.Namespaced && applied.GetNamespace() != "" && applied.GetNamespace() != req.namespace {
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	fm, err := s.fields.of(req.res)
	if err != nil {
		return err
	}
	force := queryBool(q, "force")
	c := s.objs.In(req.res)
	for attempt := 0; ; attempt++ {
		cur, err := c.Get(req.namespace, req.name)
		absent := apierrors.IsNotFound(err)
		if err != nil && !absent {
			return err
		}
		live := cur
		if absent {
			live = req.res.New()
			live.SetName(req.name)
			live.SetNamespace(req.namespace)
		}
		out, err := fm.Apply(live, applied, mgr, force)
		if err != nil {
			return err
		}
		obj, ok := out.(objects.Object)
		if !ok {
			return apierrors.NewInternalError(fmt.Errorf("apply gave a %T", out))
		}
		code := http.StatusOK
		if absent {
			code = http.StatusCreated
			err = s.createObject(r, req, obj)
		} else {
			rv, perr := objects.ParseResourceVersion(cur.GetResourceVersion())
			if perr != nil {
				return perr
			}
			err = s.updateObject(r, req, obj, rv, false)
		}
		// Someone wrote in between (or created it): apply to their object.
		if (apierrors.IsConflict(err) && !isApplyConflict(err) || apierrors.IsAlreadyExists(err)) && attempt < maxPatchRetries {
			continue
		}
		if err != nil {
			return err
		}
		s.writeJSON(w, code, obj)
		return nil
	}
}

// isApplyConflict tells the field manager's 409 (fields owned by another
// manager) from a resourceVersion conflict.
func isApplyConflict(err error) bool {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return false
	}
	d := se.Status().Details
	return d != nil && len(d.Causes) > 0 && d.Causes[0].Type == metav1.CauseTypeFieldManagerConflict
}
