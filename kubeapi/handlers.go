package kubeapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

func (s *Server) serveResource(w http.ResponseWriter, r *http.Request, req *request) {
	var err error
	switch {
	case req.sub == "log":
		if req.verb != "get" {
			err = apierrors.NewMethodNotSupported(req.res.GroupResource(), req.verb)
			break
		}
		err = s.serveLogs(w, r, req)
	case slices.Contains(streamSubresources, req.sub):
		err = s.serveStream(w, r, req)
	case req.sub == "scale":
		err = s.serveScale(w, r, req)
	case req.sub == "eviction":
		err = s.serveEviction(w, r, req)
	case req.verb == "get":
		err = s.serveGet(w, r, req)
	case req.verb == "list":
		err = s.serveList(w, r, req)
	case req.verb == "watch":
		err = s.serveWatch(w, r, req)
	case req.verb == "create":
		if req.sub != "" {
			err = apierrors.NewMethodNotSupported(req.res.GroupResource(), "create "+req.sub)
			break
		}
		err = s.serveCreate(w, r, req)
	case req.verb == "update":
		err = s.serveUpdate(w, r, req)
	case req.verb == "patch":
		err = s.servePatch(w, r, req)
	case req.verb == "delete":
		err = s.serveDelete(w, r, req)
	default:
		err = apierrors.NewMethodNotSupported(req.res.GroupResource(), req.verb)
	}
	if err != nil {
		s.writeError(w, err)
	}
}

func (s *Server) serveGet(w http.ResponseWriter, r *http.Request, req *request) error {
	obj, err := s.objs.In(req.res).Get(req.namespace, req.name)
	if err != nil {
		return err
	}
	if wantsTable(r.Header.Get("Accept")) {
		s.writeJSON(w, http.StatusOK, s.table(req.res, []objects.Object{obj}, obj.GetResourceVersion(), r))
		return nil
	}
	s.writeJSON(w, http.StatusOK, obj)
	return nil
}

// selectors parses labelSelector and fieldSelector, rejecting field labels
// the resource cannot select on.
func (s *Server) selectors(r *http.Request, res *objects.Resource) (labels.Selector, fields.Selector, error) {
	q := r.URL.Query()
	ls, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("invalid labelSelector: %v", err))
	}
	fs, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("invalid fieldSelector: %v", err))
	}
	known := res.FieldSet(res.New())
	for _, req := range fs.Requirements() {
		if _, ok := known[req.Field]; !ok {
			return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
		}
	}
	return ls, fs, nil
}

func (s *Server) serveList(w http.ResponseWriter, r *http.Request, req *request) error {
	ls, fs, err := s.selectors(r, req.res)
	if err != nil {
		return err
	}
	pg, err := listPage(r, s.objs.In(req.res), req.namespace, ls, fs)
	if err != nil {
		return err
	}
	rv := pg.rv.String()
	if wantsTable(r.Header.Get("Accept")) {
		t := s.table(req.res, pg.items, rv, r)
		t.Continue, t.RemainingItemCount = pg.continues, pg.remaining
		s.writeJSON(w, http.StatusOK, t)
		return nil
	}
	list := req.res.NewList()
	if err := (objects.List{Items: pg.items, ResourceVersion: pg.rv}).Into(list); err != nil {
		return apierrors.NewInternalError(err)
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	lm.SetContinue(pg.continues)
	lm.SetRemainingItemCount(pg.remaining)
	list.GetObjectKind().SetGroupVersionKind(req.res.GroupVersion.WithKind(req.res.Kind + "List"))
	s.writeJSON(w, http.StatusOK, list)
	return nil
}

// readBody reads a request body up to the size limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, s.cfg.MaxBodyBytes))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("request body exceeds the limit of %d bytes", s.cfg.MaxBodyBytes))
	}
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("reading request body: %v", err))
	}
	return body, nil
}

// decodeBody decodes a create or update body (JSON, YAML or protobuf) into
// res's type, honouring the fieldValidation query parameter.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, res *objects.Resource, body []byte, contentType string) (objects.Object, error) {
	got, err := s.decode(w, r, body, contentType, res.New(), res.GVK())
	if err != nil {
		return nil, err
	}
	obj, ok := got.(objects.Object)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the body is a %s, but this URL takes %s %s",
			got.GetObjectKind().GroupVersionKind(), res.GroupVersion, res.Kind))
	}
	// Fields a custom resource's schema does not declare are found by
	// pruning, as kube-apiserver does, and reported per fieldValidation.
	var unknown []string
	for _, f := range res.UnknownFields(obj) {
		unknown = append(unknown, fmt.Sprintf("unknown field %q", f))
	}
	switch v := r.URL.Query().Get("fieldValidation"); {
	case len(unknown) == 0 || v == "Ignore":
	case v == "Strict":
		return nil, apierrors.NewBadRequest("strict decoding error: " + strings.Join(unknown, ", "))
	default:
		for _, u := range unknown {
			w.Header().Add("Warning", "299 - "+strconv.Quote(u))
		}
	}
	return obj, nil
}

// decode decodes a body of the given Content-Type into into (of kind gvk),
// honouring the fieldValidation query parameter for JSON and YAML.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, body []byte, contentType string, into runtime.Object, gvk schema.GroupVersionKind) (runtime.Object, error) {
	mt := mediaType(contentType)
	if mt == "" {
		mt = "application/json"
	}
	info, ok := runtime.SerializerInfoForMediaType(s.objs.Codecs().SupportedMediaTypes(), mt)
	if !ok {
		return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "decode", schema.GroupResource{}, "",
			fmt.Sprintf("unsupported media type %q: send application/json, application/yaml or application/vnd.kubernetes.protobuf", mt), 0, false)
	}
	validation := r.URL.Query().Get("fieldValidation")
	switch validation {
	case "", "Ignore", "Warn", "Strict":
	default:
		return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid fieldValidation %q: must be Ignore, Warn or Strict", validation))
	}
	dec := info.Serializer
	if info.StrictSerializer != nil && validation != "Ignore" {
		dec = info.StrictSerializer
	}
	got, _, err := dec.Decode(body, &gvk, into)
	if err != nil {
		if !runtime.IsStrictDecodingError(err) || got == nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the request body is not a valid %s: %v", gvk.Kind, err))
		}
		if validation == "Strict" {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if sde, ok := runtime.AsStrictDecodingError(err); ok {
			for _, e := range sde.Errors() {
				w.Header().Add("Warning", fmt.Sprintf("299 - %s", strconv.Quote(e.Error())))
			}
		}
	}
	if got.GetObjectKind().GroupVersionKind().Kind != "" && got.GetObjectKind().GroupVersionKind().Kind != gvk.Kind {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the body is a %s, but this URL takes %s", got.GetObjectKind().GroupVersionKind(), gvk))
	}
	return got, nil
}

// matchTarget checks that an object's namespace and name fit the URL.
func matchTarget(req *request, obj objects.Object) error {
	if req.res.Namespaced {
		if obj.GetNamespace() == "" {
			obj.SetNamespace(req.namespace)
		}
		if obj.GetNamespace() != req.namespace {
			return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
	}
	if req.name != "" && obj.GetName() != req.name {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", obj.GetName(), req.name))
	}
	return nil
}

func (s *Server) serveCreate(w http.ResponseWriter, r *http.Request, req *request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	obj, err := s.decodeBody(w, r, req.res, body, r.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	if err := matchTarget(req, obj); err != nil {
		return err
	}
	if err := s.createObject(r, req, obj); err != nil {
		return err
	}
	s.writeJSON(w, http.StatusCreated, obj)
	return nil
}

// createObject validates, admits and inserts a new object, its
// managedFields those of the request's manager (or, for a server-side
// apply, those the apply computed). Under dryRun it stops before writing.
func (s *Server) createObject(r *http.Request, req *request, obj objects.Object) error {
	c := s.objs.In(req.res)
	applied := obj.GetManagedFields()
	if err := c.PrepareCreate(obj); err != nil {
		return err
	}
	if isApply(r) {
		obj.SetManagedFields(applied)
	} else if err := s.trackUpdate(r, req.res, nil, obj); err != nil {
		return err
	}
	if err := s.admit(r, req, "CREATE", obj, nil); err != nil {
		return err
	}
	if dryRun(r) {
		return nil
	}
	return c.Strict().Insert(obj)
}

func dryRun(r *http.Request) bool { return r.URL.Query().Get("dryRun") == "All" }

func (s *Server) serveUpdate(w http.ResponseWriter, r *http.Request, req *request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	obj, err := s.replace(w, r, req, body, r.Header.Get("Content-Type"), true)
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, obj)
	return nil
}

// replace decodes a whole object and writes it as an update of req's
// object, with its resourceVersion (if set) as the precondition: the
// client's if clients is set, else one the server read.
func (s *Server) replace(w http.ResponseWriter, r *http.Request, req *request, body []byte, contentType string, client bool) (objects.Object, error) {
	obj, err := s.decodeBody(w, r, req.res, body, contentType)
	if err != nil {
		return nil, err
	}
	if err := matchTarget(req, obj); err != nil {
		return nil, err
	}
	rv, err := objects.ParseResourceVersion(obj.GetResourceVersion())
	if err != nil {
		return nil, err
	}
	return obj, s.updateObject(r, req, obj, rv, client)
}

// updateObject validates, admits and writes an update of req's object; rv,
// when non-zero, is the optimistic-concurrency precondition; client says
// the client gave it (objects.Collection.Strict), not the server. Under
// dryRun it stops before writing.
func (s *Server) updateObject(r *http.Request, req *request, obj objects.Object, rv objects.ResourceVersion, client bool) error {
	c := s.objs.In(req.res)
	if client {
		c = c.Strict()
	}
	c.Await(r.Context(), req.namespace, req.name, rv)
	old, err := c.Get(req.namespace, req.name)
	if err != nil {
		return err
	}
	if err := c.PrepareUpdate(obj, old, req.sub == "status"); err != nil {
		return err
	}
	if req.sub == "" && !isApply(r) {
		if err := s.trackUpdate(r, req.res, old, obj); err != nil {
			return err
		}
	}
	if req.sub == "" {
		if err := s.admit(r, req, "UPDATE", obj, old); err != nil {
			return err
		}
	}
	if dryRun(r) {
		return nil
	}
	return c.Write(obj, rv)
}

// admit asks the Admitter and counts its decision.
func (s *Server) admit(r *http.Request, req *request, op string, obj, old objects.Object) error {
	if s.cfg.Admitter == nil {
		return nil
	}
	gvk := req.res.GVK()
	ar := AdmissionRequest{
		Operation: op,
		Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Resource:  metav1.GroupVersionResource{Group: req.res.GroupVersion.Group, Version: req.res.GroupVersion.Version, Resource: req.res.Plural},
		Namespace: obj.GetNamespace(),
		Name:      obj.GetName(),
		Object:    obj,
		UserInfo:  req.user,
	}
	if old != nil {
		ar.OldObject = old
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	err := s.cfg.Admitter.Admit(r.Context(), ar)
	decision := "allow"
	if err != nil {
		decision = "deny"
	}
	s.metrics.admission.WithLabelValues(op, req.res.Plural, decision).Inc()
	if err == nil {
		return nil
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return err
	}
	return apierrors.NewForbidden(req.res.GroupResource(), obj.GetName(), err)
}

func (s *Server) serveDelete(w http.ResponseWriter, r *http.Request, req *request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var opts metav1.DeleteOptions
	if len(bytes.TrimSpace(body)) > 0 {
		if _, err := s.decode(w, r, body, r.Header.Get("Content-Type"), &opts, req.res.GroupVersion.WithKind("DeleteOptions")); err != nil {
			return err
		}
	}
	grace, err := queryInt(r.URL.Query(), "gracePeriodSeconds")
	if err != nil {
		return err
	}
	if grace != nil {
		opts.GracePeriodSeconds = grace
	}
	if p := r.URL.Query().Get("propagationPolicy"); p != "" {
		opts.PropagationPolicy = new(metav1.DeletionPropagation(p))
	}
	do, err := deleteOptions(&opts)
	if err != nil {
		return err
	}
	if dryRun(r) {
		obj, err := s.objs.In(req.res).Get(req.namespace, req.name)
		if err != nil {
			return err
		}
		s.writeJSON(w, http.StatusOK, obj)
		return nil
	}
	obj, err := s.objs.In(req.res).Strict().Delete(req.namespace, req.name, do)
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, obj)
	return nil
}

// deleteOptions are the object layer's options of a delete request.
func deleteOptions(opts *metav1.DeleteOptions) (objects.DeleteOptions, error) {
	do := objects.DeleteOptions{GracePeriodSeconds: opts.GracePeriodSeconds}
	if p := opts.Preconditions; p != nil {
		if p.UID != nil {
			do.UID = *p.UID
		}
		if p.ResourceVersion != nil {
			do.ResourceVersion = *p.ResourceVersion
		}
	}
	//lint:ignore SA1019 deprecated, but kube-apiserver still honours it and old clients send it
	orphan := opts.OrphanDependents
	switch {
	case opts.PropagationPolicy != nil && orphan != nil:
		return do, apierrors.NewBadRequest("propagationPolicy and orphanDependents cannot both be set")
	case opts.PropagationPolicy != nil:
		do.Propagation = *opts.PropagationPolicy
		switch do.Propagation {
		case metav1.DeletePropagationOrphan, metav1.DeletePropagationBackground, metav1.DeletePropagationForeground:
		default:
			return do, apierrors.NewBadRequest(fmt.Sprintf("invalid propagationPolicy %q: must be Orphan, Background or Foreground", do.Propagation))
		}
	case orphan != nil && *orphan:
		do.Propagation = metav1.DeletePropagationOrphan
	case orphan != nil:
		do.Propagation = metav1.DeletePropagationBackground
	}
	return do, nil
}

// serveEviction serves POST pods/NAME/eviction: a policy/v1 (or v1beta1)
// Eviction, answered 201 once the pod is being deleted, or 429 while its
// disruption budget forbids it.
func (s *Server) serveEviction(w http.ResponseWriter, r *http.Request, req *request) error {
	if req.verb != "create" {
		return apierrors.NewMethodNotSupported(req.res.GroupResource(), req.verb+" eviction")
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var ev policyv1.Eviction
	if _, err := s.decode(w, r, body, r.Header.Get("Content-Type"), &ev, policyv1.SchemeGroupVersion.WithKind("Eviction")); err != nil {
		return err
	}
	if ev.Name != "" && ev.Name != req.name {
		return apierrors.NewBadRequest(fmt.Sprintf("name in URL does not match name in Eviction object: %s vs %s", req.name, ev.Name))
	}
	do, dry := objects.DeleteOptions{}, dryRun(r)
	if opts := ev.DeleteOptions; opts != nil {
		var err error
		if do, err = deleteOptions(opts); err != nil {
			return err
		}
		dry = dry || slices.Contains(opts.DryRun, metav1.DryRunAll)
	}
	if err := s.objs.Evict(r.Context(), req.namespace, req.name, do, dry); err != nil {
		return err
	}
	s.writeJSON(w, http.StatusCreated, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess, Code: http.StatusCreated})
	return nil
}

// serveScale serves GET, PUT and PATCH of a workload's scale subresource.
func (s *Server) serveScale(w http.ResponseWriter, r *http.Request, req *request) error {
	obj, err := s.objs.In(req.res).Get(req.namespace, req.name)
	if err != nil {
		return err
	}
	sc, err := req.res.Scale(obj)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	next := &autoscalingv1.Scale{}
	scaleGVK := autoscalingv1.SchemeGroupVersion.WithKind("Scale")
	switch req.verb {
	case "get":
		s.writeJSON(w, http.StatusOK, sc)
		return nil
	case "update", "patch":
		body, err := s.readBody(w, r)
		if err != nil {
			return err
		}
		ct := r.Header.Get("Content-Type")
		if req.verb == "patch" {
			cur, _ := json.Marshal(sc)
			body, err = applyPatch(req.res.GroupResource(), ct, cur, body, &autoscalingv1.Scale{})
			if err != nil {
				return err
			}
			ct = "application/json"
		}
		if _, err := s.decode(w, r, body, ct, next, scaleGVK); err != nil {
			return err
		}
	default:
		return apierrors.NewMethodNotSupported(req.res.GroupResource(), req.verb+" scale")
	}
	rv, err := objects.ParseResourceVersion(next.ResourceVersion)
	if err != nil {
		return err
	}
	if err := req.res.SetReplicas(obj, next.Spec.Replicas); err != nil {
		return apierrors.NewInternalError(err)
	}
	sub := *req
	sub.sub = ""
	if err := s.updateObject(r, &sub, obj, rv, true); err != nil {
		return err
	}
	sc, err = req.res.Scale(obj)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	s.writeJSON(w, http.StatusOK, sc)
	return nil
}

func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request, req *request) error {
	if s.cfg.Logs == nil {
		return apierrors.NewServiceUnavailable("logs are not available on this node")
	}
	obj, err := s.objs.In(req.res).Get(req.namespace, req.name)
	if err != nil {
		return err
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return apierrors.NewMethodNotSupported(req.res.GroupResource(), "log")
	}
	q := r.URL.Query()
	opts := &corev1.PodLogOptions{Container: q.Get("container"), Follow: q.Get("follow") == "true", Previous: q.Get("previous") == "true", Timestamps: q.Get("timestamps") == "true"}
	if opts.TailLines, err = queryInt(q, "tailLines"); err != nil {
		return err
	}
	if opts.SinceSeconds, err = queryInt(q, "sinceSeconds"); err != nil {
		return err
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return apierrors.NewBadRequest(fmt.Sprintf("invalid sinceTime %q: %v", v, err))
		}
		opts.SinceTime = &metav1.Time{Time: t}
	}
	fw := &flushWriter{w: w}
	w.Header().Set("Content-Type", "text/plain")
	err = s.cfg.Logs.StreamLogs(r.Context(), pod, opts, fw)
	if err != nil && fw.started {
		// The stream has begun; a status can no longer be sent.
		s.log.Warn("log stream ended with error", "pod", req.namespace+"/"+req.name, "err", err)
		return nil
	}
	return err
}

// flushWriter writes the status line on first write and flushes every write,
// so followed logs reach kubectl as they are produced.
type flushWriter struct {
	w       http.ResponseWriter
	started bool
}

func (f *flushWriter) Write(p []byte) (int, error) {
	f.started = true
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}
