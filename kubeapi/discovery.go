package kubeapi

import (
	"encoding/json"
	"mime"
	"net/http"
	"slices"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

var resourceVerbs = []string{"create", "delete", "get", "list", "patch", "update", "watch"}

// subresourceVerbs are the verbs of each subresource.
var subresourceVerbs = map[string][]string{
	"status": {"get", "patch", "update"},
	"scale":  {"get", "patch", "update"},
	"log":    {"get"},
	// kubectl opens streams with GET (WebSocket) or POST (SPDY).
	"exec":        {"create", "get"},
	"attach":      {"create", "get"},
	"portforward": {"create", "get"},
	"eviction":    {"create"},
}

// subresourceKind is the kind a subresource answers with.
func subresourceKind(r *objects.Resource, sub string) *metav1.GroupVersionKind {
	switch sub {
	case "scale":
		return &metav1.GroupVersionKind{Group: autoscalingv1.GroupName, Version: "v1", Kind: "Scale"}
	case "log":
		return &metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	case "exec":
		return &metav1.GroupVersionKind{Version: "v1", Kind: "PodExecOptions"}
	case "attach":
		return &metav1.GroupVersionKind{Version: "v1", Kind: "PodAttachOptions"}
	case "portforward":
		return &metav1.GroupVersionKind{Version: "v1", Kind: "PodPortForwardOptions"}
	case "eviction":
		return &metav1.GroupVersionKind{Group: "policy", Version: "v1", Kind: "Eviction"}
	}
	return &metav1.GroupVersionKind{Group: r.GroupVersion.Group, Version: r.GroupVersion.Version, Kind: r.Kind}
}

const aggregatedDiscoveryType = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

// wantsAggregated reports whether the Accept header asks for aggregated
// discovery v2.
func wantsAggregated(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		_, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && params["as"] == "APIGroupDiscoveryList" && params["g"] == "apidiscovery.k8s.io" && params["v"] == "v2" {
			return true
		}
	}
	return false
}

// serveRootDiscovery answers /api and /apis, aggregated (v2) when asked.
func (s *Server) serveRootDiscovery(w http.ResponseWriter, r *http.Request, path string) {
	core := path == "/api"
	if wantsAggregated(r.Header.Get("Accept")) {
		list := &apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"}}
		for _, gv := range s.groupVersions() {
			if (gv.Group == "") != core {
				continue
			}
			list.Items = append(list.Items, apidiscoveryv2.APIGroupDiscovery{
				ObjectMeta: metav1.ObjectMeta{Name: gv.Group},
				Versions:   []apidiscoveryv2.APIVersionDiscovery{s.versionDiscovery(gv)},
			})
		}
		data, err := json.Marshal(list)
		if err != nil {
			s.writeError(w, apierrors.NewInternalError(err))
			return
		}
		w.Header().Set("Content-Type", aggregatedDiscoveryType)
		w.Header().Set("Vary", "Accept")
		w.Write(data)
		return
	}
	w.Header().Set("Vary", "Accept")
	if core {
		s.writeJSON(w, http.StatusOK, &metav1.APIVersions{
			TypeMeta:                   metav1.TypeMeta{Kind: "APIVersions"},
			Versions:                   []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}},
		})
		return
	}
	list := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	for _, gv := range s.groupVersions() {
		if gv.Group != "" {
			list.Groups = append(list.Groups, apiGroup(gv))
		}
	}
	s.writeJSON(w, http.StatusOK, list)
}

func apiGroup(gv schema.GroupVersion) metav1.APIGroup {
	v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
	return metav1.APIGroup{TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}, Name: gv.Group, Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v}
}

func (s *Server) versionDiscovery(gv schema.GroupVersion) apidiscoveryv2.APIVersionDiscovery {
	if g, ok := s.staticGroup(gv); ok {
		return g.discovery()
	}
	vd := apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
	for _, r := range servedIn(s.objs, gv) {
		scope := apidiscoveryv2.ScopeCluster
		if r.Namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		rd := apidiscoveryv2.APIResourceDiscovery{
			Resource:         r.Plural,
			ResponseKind:     &metav1.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: r.Kind},
			Scope:            scope,
			SingularResource: r.Singular,
			Verbs:            resourceVerbs,
			ShortNames:       r.ShortNames,
			Categories:       r.Categories,
		}
		for _, sub := range r.Subresources {
			rd.Subresources = append(rd.Subresources, apidiscoveryv2.APISubresourceDiscovery{
				Subresource:  sub,
				ResponseKind: subresourceKind(r, sub),
				Verbs:        subresourceVerbs[sub],
			})
		}
		vd.Resources = append(vd.Resources, rd)
	}
	return vd
}

// serveGroup answers /apis/GROUP.
func (s *Server) serveGroup(w http.ResponseWriter, group string) {
	for _, gv := range s.groupVersions() {
		if gv.Group == group && group != "" {
			s.writeJSON(w, http.StatusOK, apiGroup(gv))
			return
		}
	}
	s.writeError(w, notFoundPath("/apis/"+group))
}

// serveResourceList answers /api/v1 and /apis/GROUP/VERSION.
func (s *Server) serveResourceList(w http.ResponseWriter, gv schema.GroupVersion) {
	if g, ok := s.staticGroup(gv); ok {
		s.writeJSON(w, http.StatusOK, &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String(), APIResources: g.apiResources()})
		return
	}
	rs := servedIn(s.objs, gv)
	if len(rs) == 0 {
		s.writeError(w, notFoundPath("/"+gvPath(gv)))
		return
	}
	list := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
	for _, r := range rs {
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: r.Plural, SingularName: r.Singular, Namespaced: r.Namespaced, Kind: r.Kind,
			Verbs: resourceVerbs, ShortNames: r.ShortNames, Categories: r.Categories,
		})
		for _, sub := range r.Subresources {
			k := subresourceKind(r, sub)
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name: r.Plural + "/" + sub, Namespaced: r.Namespaced, Group: k.Group, Version: k.Version, Kind: k.Kind, Verbs: subresourceVerbs[sub],
			})
		}
	}
	s.writeJSON(w, http.StatusOK, list)
}

// servedIn lists the served resources of gv.
func servedIn(o *objects.Objects, gv schema.GroupVersion) []*objects.Resource {
	var out []*objects.Resource
	for _, r := range o.Resources() {
		if r.GroupVersion == gv {
			out = append(out, r)
		}
	}
	return out
}

// staticGroup is an API version served outside the object layer, with
// fixed resources: the review APIs (not selfsubjectrulesreviews, which
// answers "not supported"), and metrics.k8s.io.
type staticGroup struct {
	gv        schema.GroupVersion
	resources []staticResource
}

// staticResource is a resource of a static group with its OpenAPI models:
// the kind's Go type, and its list's for resources that list.
type staticResource struct {
	metav1.APIResource
	obj, list any
}

var reviewGroups = []staticGroup{
	{authenticationv1.SchemeGroupVersion, []staticResource{
		{metav1.APIResource{Name: "selfsubjectreviews", Kind: "SelfSubjectReview", Verbs: []string{"create"}}, &authenticationv1.SelfSubjectReview{}, nil},
	}},
	{authorizationv1.SchemeGroupVersion, []staticResource{
		{metav1.APIResource{Name: "selfsubjectaccessreviews", Kind: "SelfSubjectAccessReview", Verbs: []string{"create"}}, &authorizationv1.SelfSubjectAccessReview{}, nil},
		{metav1.APIResource{Name: "subjectaccessreviews", Kind: "SubjectAccessReview", Verbs: []string{"create"}}, &authorizationv1.SubjectAccessReview{}, nil},
	}},
}

// staticGroups are the static API versions this server serves.
func (s *Server) staticGroups() []staticGroup {
	if s.cfg.Metrics != nil {
		return append(slices.Clone(reviewGroups), metricsGroup)
	}
	return reviewGroups
}

// staticGroup returns the static group of gv, if gv is one.
func (s *Server) staticGroup(gv schema.GroupVersion) (staticGroup, bool) {
	i := slices.IndexFunc(s.staticGroups(), func(g staticGroup) bool { return g.gv == gv })
	if i < 0 {
		return staticGroup{}, false
	}
	return s.staticGroups()[i], true
}

// groupVersions are the served API versions: the object layer's and the
// static ones.
func (s *Server) groupVersions() []schema.GroupVersion {
	gvs := s.objs.GroupVersions()
	for _, g := range s.staticGroups() {
		gvs = append(gvs, g.gv)
	}
	return gvs
}

// models are the OpenAPI model names of r.
func (r staticResource) models() []string {
	if r.list == nil {
		return []string{modelName(r.obj)}
	}
	return []string{modelName(r.obj), modelName(r.list)}
}

func (g staticGroup) apiResources() []metav1.APIResource {
	out := make([]metav1.APIResource, len(g.resources))
	for i, r := range g.resources {
		out[i] = r.APIResource
	}
	return out
}

func (g staticGroup) discovery() apidiscoveryv2.APIVersionDiscovery {
	vd := apidiscoveryv2.APIVersionDiscovery{Version: g.gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
	for _, r := range g.resources {
		scope := apidiscoveryv2.ScopeCluster
		if r.Namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		vd.Resources = append(vd.Resources, apidiscoveryv2.APIResourceDiscovery{
			Resource: r.Name, Scope: scope, Verbs: r.Verbs,
			ResponseKind: &metav1.GroupVersionKind{Group: g.gv.Group, Version: g.gv.Version, Kind: r.Kind},
		})
	}
	return vd
}
