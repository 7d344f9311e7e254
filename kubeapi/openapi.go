package kubeapi

import (
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	crdopenapi "k8s.io/apiextensions-apiserver/pkg/controller/openapi/builder"
	crdopenapidefs "k8s.io/apiextensions-apiserver/pkg/generated/openapi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/mycelfabric/mycel/kubeapi/internal/openapidefs"
	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// newOpenAPIHandler builds the OpenAPI documents of the served resources
// (the object layer's and the static groups') from the generated
// definitions and serves them as kube-apiserver does:
// /openapi/v3 (index, per group-version documents, hashes and ETags), which
// kubectl needs for apply, explain and server-side field validation, and
// /openapi/v2 (definitions only, JSON or protobuf), which kubectl falls back
// to for kinds the server does not serve and older kubectl versions use.
func newOpenAPIHandler(o *objects.Objects, static []staticGroup) (*openAPIHandler, error) {
	docs, err := buildOpenAPI(o, static)
	if err != nil {
		return nil, err
	}
	h := &openAPIHandler{objs: o, v3: handler3.NewOpenAPIService(), mux: http.NewServeMux()}
	for gv, d := range docs {
		h.v3.UpdateGroupVersion(gv, d)
	}
	if err := h.v3.RegisterOpenAPIV3VersionedService("/openapi/v3", serveMux{h.mux}); err != nil {
		return nil, err
	}
	if h.static, err = buildOpenAPIV2(o, static); err != nil {
		return nil, err
	}
	h.v2 = handler.NewOpenAPIService(h.static)
	h.v2.RegisterOpenAPIVersionedService("/openapi/v2", serveMux{h.mux})
	return h, nil
}

// openAPIHandler serves the built-in resources' documents, and those of
// the CRDs being served, built with apiextensions-apiserver's builder from
// each version's schema and rebuilt when the CRDs change.
type openAPIHandler struct {
	objs   *objects.Objects
	mux    *http.ServeMux
	v3     *handler3.OpenAPIService
	v2     *handler.OpenAPIService
	static *spec.Swagger

	mu     sync.Mutex
	gen    uint64
	custom map[string]bool // group-version paths of CRDs now served
}

func (h *openAPIHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.refresh(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *openAPIHandler) refresh() error {
	crds, gen := h.objs.ServedCRDs()
	h.mu.Lock()
	defer h.mu.Unlock()
	if gen == h.gen {
		return nil
	}
	v3 := map[string][]*spec3.OpenAPI{}
	var v2 []*spec.Swagger
	for _, crd := range crds {
		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}
			d3, err := crdopenapi.BuildOpenAPIV3(crd, v.Name, crdopenapi.Options{})
			if err != nil {
				return fmt.Errorf("openapi of CRD %s %s: %w", crd.Name, v.Name, err)
			}
			d2, err := crdopenapi.BuildOpenAPIV2(crd, v.Name, crdopenapi.Options{V2: true})
			if err != nil {
				return fmt.Errorf("openapi v2 of CRD %s %s: %w", crd.Name, v.Name, err)
			}
			p := gvPath(schema.GroupVersion{Group: crd.Spec.Group, Version: v.Name})
			v3[p] = append(v3[p], d3)
			v2 = append(v2, d2)
		}
	}
	for p, docs := range v3 {
		merged, err := crdopenapi.MergeSpecsV3(docs...)
		if err != nil {
			return err
		}
		h.v3.UpdateGroupVersion(p, merged)
	}
	for p := range h.custom {
		if v3[p] == nil {
			h.v3.DeleteGroupVersion(p)
		}
	}
	merged, err := crdopenapi.MergeSpecs(h.static, v2...)
	if err != nil {
		return err
	}
	if err := h.v2.UpdateSpec(merged); err != nil {
		return err
	}
	h.custom = map[string]bool{}
	for p := range v3 {
		h.custom[p] = true
	}
	h.gen = gen
	return nil
}

// definitions are the OpenAPI models of the built-in kinds: those generated
// for k8s.io/api (make generate) and apiextensions-apiserver's own for CRDs.
func definitions(ref common.ReferenceCallback) map[string]common.OpenAPIDefinition {
	defs := openapidefs.GetOpenAPIDefinitions(ref)
	maps.Copy(defs, crdopenapidefs.GetOpenAPIDefinitions(ref))
	return defs
}

// buildOpenAPIV2 returns a Swagger 2.0 document with the definitions of
// every served kind.
func buildOpenAPIV2(o *objects.Objects, static []staticGroup) (*spec.Swagger, error) {
	gvks := servedModelGVKs(o, static)
	cfg := &common.Config{
		Info:           &spec.Info{InfoProps: spec.InfoProps{Title: "Mycel", Version: "v1"}},
		GetDefinitions: definitions,
		GetDefinitionName: func(n string) (string, spec.Extensions) {
			return n, gvkExtension(gvks, n)
		},
	}
	models := []string{modelName(&metav1.Status{}), modelName(&metav1.DeleteOptions{}), modelName(&autoscalingv1.Scale{})}
	for _, r := range o.Resources() {
		if r.Custom() {
			continue // the CRDs' documents are built apart (openAPIHandler)
		}
		models = append(models, modelName(r.New()), modelName(r.NewList()))
	}
	for _, g := range static {
		for _, r := range g.resources {
			models = append(models, r.models()...)
		}
	}
	sw, err := builder.BuildOpenAPIDefinitionsForResources(cfg, models...)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: openapi v2: %w", err)
	}
	sw.Swagger = "2.0"
	sw.Paths = &spec.Paths{Paths: map[string]spec.PathItem{}}
	return sw, nil
}

// gvkExtension is the x-kubernetes-group-version-kind extension of a model
// (an array on schemas), or nil.
func gvkExtension(gvks map[string][]schema.GroupVersionKind, name string) spec.Extensions {
	l, ok := gvks[name]
	if !ok {
		return nil
	}
	arr := make([]any, 0, len(l))
	for _, g := range l {
		arr = append(arr, gvkMap(g))
	}
	return spec.Extensions{gvkExt: arr}
}

type serveMux struct{ *http.ServeMux }

func (m serveMux) Handle(p string, h http.Handler)       { m.ServeMux.Handle(p, h) }
func (m serveMux) HandlePrefix(p string, h http.Handler) { m.ServeMux.Handle(p, h) }

const gvkExt = "x-kubernetes-group-version-kind"

// servedModelGVKs maps each OpenAPI model name to the GVKs it is served
// as, as kube-apiserver's definition namer does: the types registered in
// the object layer's scheme and the static groups' kinds.
func servedModelGVKs(o *objects.Objects, static []staticGroup) map[string][]schema.GroupVersionKind {
	m := modelGVKs(o.Scheme())
	for _, g := range static {
		for _, r := range g.resources {
			m[modelName(r.obj)] = []schema.GroupVersionKind{g.gv.WithKind(r.Kind)}
			if r.list != nil {
				m[modelName(r.list)] = []schema.GroupVersionKind{g.gv.WithKind(r.Kind + "List")}
			}
		}
	}
	return m
}

// modelGVKs maps each OpenAPI model name to the GVKs it is registered
// under in s.
func modelGVKs(s *runtime.Scheme) map[string][]schema.GroupVersionKind {
	m := map[string][]schema.GroupVersionKind{}
	for gvk, t := range s.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal {
			continue
		}
		name := util.GetCanonicalTypeName(reflect.New(t).Interface())
		m[name] = append(m[name], gvk)
	}
	for _, l := range m {
		sort.Slice(l, func(i, j int) bool { return l[i].String() < l[j].String() })
	}
	return m
}

func gvkMap(g schema.GroupVersionKind) map[string]any {
	return map[string]any{"group": g.Group, "version": g.Version, "kind": g.Kind}
}

func modelName(o any) string { return util.GetCanonicalTypeName(o) }

func schemaRef(o any) *spec.Schema {
	return &spec.Schema{SchemaProps: spec.SchemaProps{Ref: spec.MustCreateRef("#/components/schemas/" + common.EscapeJsonPointer(modelName(o)))}}
}

func param(name, in, typ, desc string, required bool) *spec3.Parameter {
	return &spec3.Parameter{ParameterProps: spec3.ParameterProps{
		Name: name, In: in, Description: desc, Required: required,
		Schema: &spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{typ}, UniqueItems: true}},
	}}
}

var (
	pPretty          = param("pretty", "query", "string", "If 'true', then the output is pretty printed.", false)
	pDryRun          = param("dryRun", "query", "string", "When present, indicates that modifications should not be persisted. Valid values are: - All", false)
	pFieldManager    = param("fieldManager", "query", "string", "fieldManager is a name associated with the actor or entity that is making these changes.", false)
	pFieldValidation = param("fieldValidation", "query", "string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.", false)
	pNamespace       = param("namespace", "path", "string", "object name and auth scope, such as for teams and projects", true)
	pFieldSelector   = param("fieldSelector", "query", "string", "A selector to restrict the list of returned objects by their fields.", false)
	pLabelSelector   = param("labelSelector", "query", "string", "A selector to restrict the list of returned objects by their labels.", false)
	listParams       = []*spec3.Parameter{
		param("allowWatchBookmarks", "query", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\".", false),
		pFieldSelector,
		pLabelSelector,
		param("resourceVersion", "query", "string", "resourceVersion sets a constraint on what resource versions a request may be served from.", false),
		param("sendInitialEvents", "query", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`.", false),
		param("timeoutSeconds", "query", "integer", "Timeout for the list/watch call.", false),
		param("watch", "query", "boolean", "Watch for changes to the described resources.", false),
	}
	objMedia   = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
	listMedia  = append(append([]string{}, objMedia...), "application/json;stream=watch")
	patchMedia = []string{"application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"}
)

func content(types []string, s *spec.Schema) map[string]*spec3.MediaType {
	c := map[string]*spec3.MediaType{}
	for _, t := range types {
		c[t] = &spec3.MediaType{MediaTypeProps: spec3.MediaTypeProps{Schema: s}}
	}
	return c
}

func responses(model any, media []string, codes ...int) *spec3.Responses {
	r := &spec3.Responses{ResponsesProps: spec3.ResponsesProps{StatusCodeResponses: map[int]*spec3.Response{}}}
	for _, c := range codes {
		r.StatusCodeResponses[c] = &spec3.Response{ResponseProps: spec3.ResponseProps{Description: http.StatusText(c), Content: content(media, schemaRef(model))}}
	}
	r.StatusCodeResponses[401] = &spec3.Response{ResponseProps: spec3.ResponseProps{Description: "Unauthorized"}}
	return r
}

// operation builds one operation. kubectl matches operations by a single
// GVK object (schemas carry an array instead).
func operation(id, action string, gvk schema.GroupVersionKind, params []*spec3.Parameter, body *spec3.RequestBody, resp *spec3.Responses, tag string) *spec3.Operation {
	o := &spec3.Operation{OperationProps: spec3.OperationProps{OperationId: id, Tags: []string{tag}, Parameters: params, RequestBody: body, Responses: resp}}
	o.Extensions = spec.Extensions{}
	o.Extensions.Add("x-kubernetes-action", action)
	o.Extensions.Add(gvkExt, gvkMap(gvk))
	return o
}

func requestBody(types []string, model any) *spec3.RequestBody {
	return &spec3.RequestBody{RequestBodyProps: spec3.RequestBodyProps{Required: true, Content: content(types, schemaRef(model))}}
}

func opID(verb string, r *objects.Resource, sub string) string {
	return operationID(verb, r.GroupVersion, r.Namespaced, r.Kind, sub)
}

// operationID is kube-apiserver's operation ID, such as
// listAppsV1NamespacedDeployment.
func operationID(verb string, gv schema.GroupVersion, namespaced bool, kind, sub string) string {
	g := gv.Group
	if g == "" {
		g = "core"
	}
	g = title(strings.Split(g, ".")[0]) + title(gv.Version)
	ns := ""
	if namespaced {
		ns = "Namespaced"
	}
	return verb + g + ns + kind + sub
}

func title(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

// gvPath is a group version's path under /openapi/v3 and /: "api/v1" or "apis/apps/v1".
func gvPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

// gvTag is the operations' tag of a group version path: core_v1, apps_v1.
func gvTag(p string) string {
	tag := strings.ReplaceAll(strings.TrimPrefix(strings.TrimPrefix(p, "apis/"), "api/"), "/", "_")
	if !strings.Contains(tag, "_") {
		tag = "core_" + tag
	}
	return tag
}

// buildOpenAPI returns one document per served group version.
func buildOpenAPI(o *objects.Objects, static []staticGroup) (map[string]*spec3.OpenAPI, error) {
	gvks := servedModelGVKs(o, static)
	cfg := &common.OpenAPIV3Config{
		Info:           &spec.Info{InfoProps: spec.InfoProps{Title: "Mycel", Version: "v1"}},
		GetDefinitions: definitions,
		GetDefinitionName: func(n string) (string, spec.Extensions) {
			return n, gvkExtension(gvks, n)
		},
	}
	out := map[string]*spec3.OpenAPI{}
	for _, gv := range o.GroupVersions() {
		builtin := slices.DeleteFunc(servedIn(o, gv), (*objects.Resource).Custom)
		if len(builtin) == 0 {
			continue
		}
		p := gvPath(gv)
		tag := gvTag(p)
		models := []string{modelName(&metav1.Status{}), modelName(&metav1.DeleteOptions{}), modelName(&metav1.Patch{}), modelName(&metav1.WatchEvent{})}
		paths := map[string]*spec3.Path{}
		for _, r := range builtin {
			obj, list := r.New(), r.NewList()
			models = append(models, modelName(obj), modelName(list))
			base := "/" + p
			if r.Namespaced {
				base += "/namespaces/{namespace}"
			}
			coll := base + "/" + r.Plural
			item := coll + "/{name}"
			common := []*spec3.Parameter{pPretty}
			if r.Namespaced {
				common = append([]*spec3.Parameter{pNamespace}, common...)
			}
			write := []*spec3.Parameter{pDryRun, pFieldManager, pFieldValidation}
			g := r.GVK()
			paths[coll] = &spec3.Path{PathProps: spec3.PathProps{
				Parameters: common,
				Get:        operation(opID("list", r, ""), "list", g, listParams, nil, responses(list, listMedia, 200), tag),
				Post:       operation(opID("create", r, ""), "post", g, write, requestBody(objMedia, obj), responses(obj, objMedia, 200, 201, 202), tag),
			}}
			if r.Namespaced {
				paths["/"+p+"/"+r.Plural] = &spec3.Path{PathProps: spec3.PathProps{
					Parameters: []*spec3.Parameter{pPretty},
					Get:        operation(opID("list", r, "ForAllNamespaces"), "list", g, listParams, nil, responses(list, listMedia, 200), tag),
				}}
			}
			itemParams := append([]*spec3.Parameter{param("name", "path", "string", "name of the "+r.Kind, true)}, common...)
			paths[item] = &spec3.Path{PathProps: spec3.PathProps{
				Parameters: itemParams,
				Get:        operation(opID("read", r, ""), "get", g, nil, nil, responses(obj, objMedia, 200), tag),
				Put:        operation(opID("replace", r, ""), "put", g, write, requestBody(objMedia, obj), responses(obj, objMedia, 200, 201), tag),
				Patch:      operation(opID("patch", r, ""), "patch", g, write, requestBody(patchMedia, &metav1.Patch{}), responses(obj, objMedia, 200, 201), tag),
				Delete:     operation(opID("delete", r, ""), "delete", g, []*spec3.Parameter{pDryRun}, requestBody(objMedia, &metav1.DeleteOptions{}), responses(obj, objMedia, 200, 202), tag),
			}}
			if r.HasSub("status") {
				paths[item+"/status"] = &spec3.Path{PathProps: spec3.PathProps{
					Parameters: itemParams,
					Get:        operation(opID("read", r, "Status"), "get", g, nil, nil, responses(obj, objMedia, 200), tag),
					Put:        operation(opID("replace", r, "Status"), "put", g, write, requestBody(objMedia, obj), responses(obj, objMedia, 200, 201), tag),
					Patch:      operation(opID("patch", r, "Status"), "patch", g, write, requestBody(patchMedia, &metav1.Patch{}), responses(obj, objMedia, 200, 201), tag),
				}}
			}
			if r.HasSub("scale") {
				sc := &autoscalingv1.Scale{}
				sg := autoscalingv1.SchemeGroupVersion.WithKind("Scale")
				models = append(models, modelName(sc))
				paths[item+"/scale"] = &spec3.Path{PathProps: spec3.PathProps{
					Parameters: itemParams,
					Get:        operation(opID("read", r, "Scale"), "get", sg, nil, nil, responses(sc, objMedia, 200), tag),
					Put:        operation(opID("replace", r, "Scale"), "put", sg, write, requestBody(objMedia, sc), responses(sc, objMedia, 200, 201), tag),
					Patch:      operation(opID("patch", r, "Scale"), "patch", sg, write, requestBody(patchMedia, &metav1.Patch{}), responses(sc, objMedia, 200, 201), tag),
				}}
			}
			if r.HasSub("log") {
				logOp := operation(opID("read", r, "Log"), "connect", g, []*spec3.Parameter{
					param("container", "query", "string", "The container for which to stream logs.", false),
					param("follow", "query", "boolean", "Follow the log stream of the pod.", false),
					param("previous", "query", "boolean", "Return previous terminated container logs.", false),
					param("sinceSeconds", "query", "integer", "A relative time in seconds before the current time from which to show logs.", false),
					param("tailLines", "query", "integer", "Number of lines from the end of the logs to show.", false),
					param("timestamps", "query", "boolean", "Add an RFC3339 timestamp at the beginning of every line.", false),
				}, nil, &spec3.Responses{ResponsesProps: spec3.ResponsesProps{StatusCodeResponses: map[int]*spec3.Response{
					200: {ResponseProps: spec3.ResponseProps{Description: "OK", Content: content([]string{"text/plain"}, &spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"string"}}})}},
				}}}, tag)
				paths[item+"/log"] = &spec3.Path{PathProps: spec3.PathProps{Parameters: itemParams, Get: logOp}}
			}
		}
		schemas, err := builder3.BuildOpenAPIDefinitionsForResources(cfg, models...)
		if err != nil {
			return nil, fmt.Errorf("kubeapi: openapi %s: %w", p, err)
		}
		out[p] = &spec3.OpenAPI{Version: "3.0.0", Info: cfg.Info, Paths: &spec3.Paths{Paths: paths}, Components: &spec3.Components{Schemas: schemas}}
	}
	for _, g := range static {
		d, err := staticOpenAPI(cfg, g)
		if err != nil {
			return nil, err
		}
		out[gvPath(g.gv)] = d
	}
	return out, nil
}

// staticOpenAPI is the document of a static group: the paths of the verbs
// its resources serve (create, get, list with selectors) and their models.
func staticOpenAPI(cfg *common.OpenAPIV3Config, g staticGroup) (*spec3.OpenAPI, error) {
	p := gvPath(g.gv)
	tag := gvTag(p)
	models := []string{modelName(&metav1.Status{})}
	paths := map[string]*spec3.Path{}
	for _, r := range g.resources {
		models = append(models, r.models()...)
		gvk := g.gv.WithKind(r.Kind)
		id := func(verb, sub string) string { return operationID(verb, g.gv, r.Namespaced, r.Kind, sub) }
		base, common := "/"+p, []*spec3.Parameter{pPretty}
		if r.Namespaced {
			base, common = base+"/namespaces/{namespace}", []*spec3.Parameter{pNamespace, pPretty}
		}
		coll := &spec3.Path{PathProps: spec3.PathProps{Parameters: common}}
		if slices.Contains(r.Verbs, "create") {
			coll.Post = operation(id("create", ""), "post", gvk, []*spec3.Parameter{pDryRun, pFieldManager, pFieldValidation}, requestBody(objMedia, r.obj), responses(r.obj, objMedia, 200, 201, 202), tag)
		}
		if slices.Contains(r.Verbs, "list") {
			selectors := []*spec3.Parameter{pFieldSelector, pLabelSelector}
			coll.Get = operation(id("list", ""), "list", gvk, selectors, nil, responses(r.list, objMedia, 200), tag)
			if r.Namespaced {
				paths["/"+p+"/"+r.Name] = &spec3.Path{PathProps: spec3.PathProps{
					Parameters: []*spec3.Parameter{pPretty},
					Get:        operation(id("list", "ForAllNamespaces"), "list", gvk, selectors, nil, responses(r.list, objMedia, 200), tag),
				}}
			}
		}
		paths[base+"/"+r.Name] = coll
		if slices.Contains(r.Verbs, "get") {
			paths[base+"/"+r.Name+"/{name}"] = &spec3.Path{PathProps: spec3.PathProps{
				Parameters: append([]*spec3.Parameter{param("name", "path", "string", "name of the "+r.Kind, true)}, common...),
				Get:        operation(id("read", ""), "get", gvk, nil, nil, responses(r.obj, objMedia, 200), tag),
			}}
		}
	}
	schemas, err := builder3.BuildOpenAPIDefinitionsForResources(cfg, models...)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: openapi %s: %w", p, err)
	}
	return &spec3.OpenAPI{Version: "3.0.0", Info: cfg.Info, Paths: &spec3.Paths{Paths: paths}, Components: &spec3.Components{Schemas: schemas}}, nil
}
