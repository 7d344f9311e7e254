package kubeapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/server/healthz"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// DefaultMaxBodyBytes bounds request bodies, as Kubernetes does (3 MiB).
const DefaultMaxBodyBytes = 3 << 20

// Admitter decides whether a create or update may happen.
type Admitter interface {
	// Admit returns nil to allow, or an error whose message says which rule
	// denied the request (it reaches the user as 403 Forbidden). ctx carries
	// the request's deadline.
	Admit(ctx context.Context, req AdmissionRequest) error
}

// AdmissionRequest is what admission policies see, shaped like the request
// of a Kubernetes AdmissionReview.
type AdmissionRequest struct {
	Operation string                      `json:"operation"` // CREATE or UPDATE
	Kind      metav1.GroupVersionKind     `json:"kind"`
	Resource  metav1.GroupVersionResource `json:"resource"`
	Namespace string                      `json:"namespace,omitempty"`
	Name      string                      `json:"name"`
	Object    runtime.Object              `json:"object"`
	OldObject runtime.Object              `json:"oldObject,omitempty"`
	UserInfo  UserInfo                    `json:"userInfo"`
}

// UserInfo names the authenticated caller.
type UserInfo struct {
	// Username is the caller's name: the user name of a user SVID, or the
	// full SPIFFE ID of any other identity.
	Username string `json:"username"`
	// SPIFFEID is the caller's verified SPIFFE ID.
	SPIFFEID string `json:"spiffeID"`
	// Groups are the Organizations of the caller's certificate
	// (`mycel kubeconfig --group`).
	Groups []string `json:"groups,omitempty"`
}

// LogStreamer streams a pod container's logs.
type LogStreamer interface {
	// StreamLogs writes the logs of the container opts name in pod to w
	// until they end or, with opts.Follow, until ctx is done. It returns
	// an API error (e.g. 400 for an unknown container) before writing
	// anything if it cannot start.
	StreamLogs(ctx context.Context, pod *corev1.Pod, opts *corev1.PodLogOptions, w io.Writer) error
}

// Config configures a Server.
type Config struct {
	// Objects is the object layer; required.
	Objects *objects.Objects
	// Bundle verifies client certificates; required.
	Bundle *x509bundle.Bundle
	// Admitter is asked before every create and update; nil allows all.
	Admitter Admitter
	// Authorizer is asked before every resource request; nil allows all.
	Authorizer Authorizer
	// Logs serves pods/log; nil answers 503.
	Logs LogStreamer
	// Streams reaches the streaming servers of the fabric's nodes for
	// pods/exec, pods/attach and pods/portforward: a URL's host is a node
	// name. nil answers 503.
	Streams *http.Transport
	// Metrics answers metrics.k8s.io (`kubectl top`); nil serves no
	// metrics API.
	Metrics Metrics
	// ReadyChecks are the checks of /readyz besides ping (kube-apiserver's
	// healthz handlers: /readyz?verbose lists them, /readyz/NAME runs one).
	ReadyChecks []healthz.HealthChecker
	// Version is served at /version.
	Version version.Info
	// Logger; nil discards.
	Logger *slog.Logger
	// Registry receives the API's metrics and is served at /metrics; nil
	// means a fresh registry.
	Registry *prometheus.Registry
	// MaxBodyBytes bounds request bodies; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Extra serves further paths (such as /api/cluster/status) to
	// authenticated clients.
	Extra map[string]http.Handler
}

// Server is the HTTP handler of the API.
type Server struct {
	cfg     Config
	objs    *objects.Objects
	td      spiffeid.TrustDomain
	metrics *metrics
	openapi *openAPIHandler
	health  *http.ServeMux // /healthz, /livez, /readyz
	fields  *fieldManagers
	log     *slog.Logger
}

// NewServer checks cfg and returns the API handler.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Objects == nil || cfg.Bundle == nil {
		return nil, errors.New("kubeapi: Config.Objects and Config.Bundle are required")
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	s := &Server{cfg: cfg, objs: cfg.Objects, td: cfg.Bundle.TrustDomain(), log: cfg.Logger, health: http.NewServeMux()}
	healthz.InstallHandler(s.health, healthz.PingHealthz)
	healthz.InstallLivezHandler(s.health, healthz.PingHealthz)
	healthz.InstallReadyzHandler(s.health, append([]healthz.HealthChecker{healthz.PingHealthz}, cfg.ReadyChecks...)...)
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	openapi, err := newOpenAPIHandler(cfg.Objects, s.staticGroups())
	if err != nil {
		return nil, err
	}
	s.openapi = openapi
	if s.fields, err = newFieldManagers(cfg.Objects, openapi.static); err != nil {
		return nil, err
	}
	return s, nil
}

// request is a parsed resource request.
type request struct {
	res       *objects.Resource
	namespace string
	name      string
	sub       string
	user      UserInfo
	verb      string
}

type ctxKey struct{}

// ServeHTTP authenticates the caller and dispatches the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	verb, resName := strings.ToLower(r.Method), "other"
	defer func() {
		s.metrics.observe(verb, resName, rec.code, time.Since(start))
	}()
	for _, p := range []string{"/healthz", "/livez", "/readyz"} {
		if r.URL.Path == p || strings.HasPrefix(r.URL.Path, p+"/") {
			s.health.ServeHTTP(rec, r)
			return
		}
	}
	user, err := s.authenticate(r)
	if err != nil {
		s.writeError(rec, apierrors.NewUnauthorized(err.Error()))
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, user))
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case s.cfg.Extra[path] != nil:
		s.cfg.Extra[path].ServeHTTP(rec, r)
	case path == "/version":
		s.writeJSON(rec, http.StatusOK, s.cfg.Version)
	case path == "/metrics":
		promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}).ServeHTTP(rec, r)
	case path == "/openapi/v2" || path == "/openapi/v3" || strings.HasPrefix(path, "/openapi/v3/"):
		s.openapi.ServeHTTP(rec, r)
	case path == selfSubjectReviewPath || path == selfSubjectAccessReviewPath || path == subjectAccessReviewPath || path == selfSubjectRulesReviewPath:
		resName = path[strings.LastIndex(path, "/")+1:]
		if err := s.serveReview(rec, r, path, user); err != nil {
			s.writeError(rec, err)
		}
	case path == "/api" || path == "/apis":
		s.serveRootDiscovery(rec, r, path)
	case path == "/api/v1":
		s.serveResourceList(rec, schema.GroupVersion{Version: "v1"})
	case strings.HasPrefix(path, "/apis/") && strings.Count(path, "/") == 2:
		s.serveGroup(rec, strings.TrimPrefix(path, "/apis/"))
	case strings.HasPrefix(path, "/apis/") && strings.Count(path, "/") == 3:
		parts := strings.Split(strings.TrimPrefix(path, "/apis/"), "/")
		s.serveResourceList(rec, schema.GroupVersion{Group: parts[0], Version: parts[1]})
	case isHPAv1(path):
		if err := s.serveHPAv1(rec, r, path); err != nil {
			s.writeError(rec, err)
		}
	case s.cfg.Metrics != nil && strings.HasPrefix(path, "/"+gvPath(metricsGV)+"/"):
		verb, resName = "get", metricsGV.Group
		if err := s.serveMetrics(rec, r, path, user); err != nil {
			s.writeError(rec, err)
		}
	default:
		req, err := s.parse(r, path)
		if err != nil {
			s.writeError(rec, err)
			return
		}
		req.user = user
		resName = req.res.Plural
		if req.sub != "" {
			resName += "/" + req.sub
		}
		verb = req.verb
		if err := s.authorize(r.Context(), AuthzRequest{User: user, Verb: req.verb, APIGroup: req.res.GroupVersion.Group, Resource: req.res.Plural,
			Subresource: req.sub, Namespace: req.namespace, Name: req.name}); err != nil {
			s.writeError(rec, apierrors.NewForbidden(req.res.GroupResource(), req.name, err))
			return
		}
		s.serveResource(rec, r, req)
	}
}

// authenticate verifies the client certificate as an X.509-SVID of the
// trust domain.
func (s *Server) authenticate(r *http.Request) (UserInfo, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return UserInfo{}, errors.New("a client certificate of the trust domain is required (use the kubeconfig from `mycel kubeconfig`)")
	}
	id, _, err := x509svid.Verify(r.TLS.PeerCertificates, s.cfg.Bundle)
	if err != nil {
		return UserInfo{}, fmt.Errorf("client certificate is not a valid SVID of trust domain %s: %v", s.td, err)
	}
	u := UserInfo{Username: id.String(), SPIFFEID: id.String(), Groups: r.TLS.PeerCertificates[0].Subject.Organization}
	if name, ok := strings.CutPrefix(id.Path(), "/user/"); ok && !strings.Contains(name, "/") {
		u.Username = name
	}
	return u, nil
}

// parse splits a resource path:
// /api/v1[/namespaces/NS]/RESOURCE[/NAME[/SUB]] and the same under /apis/G/V.
func (s *Server) parse(r *http.Request, path string) (*request, error) {
	var gv schema.GroupVersion
	var rest string
	switch {
	case strings.HasPrefix(path, "/api/v1/"):
		gv, rest = schema.GroupVersion{Version: "v1"}, strings.TrimPrefix(path, "/api/v1/")
	case strings.HasPrefix(path, "/apis/"):
		parts := strings.SplitN(strings.TrimPrefix(path, "/apis/"), "/", 3)
		if len(parts) < 3 {
			return nil, notFoundPath(path)
		}
		gv, rest = schema.GroupVersion{Group: parts[0], Version: parts[1]}, parts[2]
	default:
		return nil, notFoundPath(path)
	}
	segs := strings.Split(rest, "/")
	req := &request{}
	if segs[0] == "namespaces" && len(segs) >= 3 && !(len(segs) == 3 && (segs[2] == "status" || segs[2] == "finalize")) {
		req.namespace, segs = segs[1], segs[2:]
	}
	if len(segs) > 3 {
		return nil, notFoundPath(path)
	}
	req.res = s.objs.Lookup(gv, segs[0])
	if req.res == nil {
		return nil, notFoundPath(path)
	}
	if len(segs) > 1 {
		req.name = segs[1]
	}
	if len(segs) > 2 {
		req.sub = segs[2]
		if !req.res.HasSub(req.sub) {
			return nil, notFoundPath(path)
		}
	}
	if req.namespace != "" && !req.res.Namespaced {
		return nil, notFoundPath(path)
	}
	if req.res.Namespaced && req.namespace == "" && req.name != "" {
		return nil, notFoundPath(path)
	}
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet:
		switch {
		case req.name != "":
			req.verb = "get"
		case q.Get("watch") == "true" || q.Get("watch") == "1":
			req.verb = "watch"
		default:
			req.verb = "list"
		}
	case http.MethodPost:
		req.verb = "create"
	case http.MethodPut:
		req.verb = "update"
	case http.MethodPatch:
		req.verb = "patch"
	case http.MethodDelete:
		req.verb = "delete"
		if req.name == "" {
			req.verb = "deletecollection"
		}
	default:
		return nil, apierrors.NewMethodNotSupported(req.res.GroupResource(), r.Method)
	}
	if slices.Contains(streamSubresources, req.sub) {
		// kubectl opens streams with GET (WebSocket) or POST (SPDY); either
		// way it is a create, as kube-apiserver authorizes it since 1.31.
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			return nil, apierrors.NewMethodNotSupported(req.res.GroupResource(), r.Method+" "+req.sub)
		}
		req.verb = "create"
	}
	return req, nil
}

func notFoundPath(path string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusNotFound, Reason: metav1.StatusReasonNotFound,
		Message: fmt.Sprintf("the server could not find the requested resource (%s); run `kubectl api-resources` to see what this server serves", path),
	}}
}

// writeJSON writes v as JSON with code.
func (s *Server) writeJSON(w http.ResponseWriter, code int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		s.writeError(w, apierrors.NewInternalError(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(data)
}

// writeError writes err as a metav1.Status.
func (s *Server) writeError(w http.ResponseWriter, err error) {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		s.log.Error("internal error", "err", err)
		se = apierrors.NewInternalError(err)
	}
	st := se.Status()
	st.Kind, st.APIVersion = "Status", "v1"
	s.writeJSON(w, int(st.Code), st)
}

// statusRecorder remembers the response code for metrics and keeps
// flushing and hijacking available to streaming handlers.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// mediaType returns the bare media type of a Content-Type header.
func mediaType(h string) string {
	mt, _, err := mime.ParseMediaType(h)
	if err != nil {
		return strings.TrimSpace(strings.Split(h, ";")[0])
	}
	return mt
}

func queryInt(q map[string][]string, name string) (*int64, error) {
	v := ""
	if vs := q[name]; len(vs) > 0 {
		v = vs[0]
	}
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid %s %q: must be an integer", name, v))
	}
	return &n, nil
}
