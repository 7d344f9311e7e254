package kubeapi

import (
	"context"
	"fmt"
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// Authorizer decides whether a user may make an API request.
type Authorizer interface {
	// Authorize returns nil to allow, or an error whose message says which
	// rule denied the request (it reaches the user as 403 Forbidden).
	Authorize(ctx context.Context, req AuthzRequest) error
}

// AuthzRequest is what the authorization policy sees of a request, with
// Kubernetes' attribute names (SubjectAccessReview's resourceAttributes).
type AuthzRequest struct {
	User        UserInfo `json:"user"`
	Verb        string   `json:"verb"`
	APIGroup    string   `json:"apiGroup"`
	Resource    string   `json:"resource"`
	Subresource string   `json:"subresource"`
	Namespace   string   `json:"namespace"`
	Name        string   `json:"name"`
	// NamespaceAnnotations are those of Namespace, when it exists: the
	// default policy grants writes through one.
	NamespaceAnnotations map[string]string `json:"namespaceAnnotations,omitempty"`
}

// authorize asks the Authorizer (if any) about req.
func (s *Server) authorize(ctx context.Context, req AuthzRequest) error {
	if s.cfg.Authorizer == nil {
		return nil
	}
	if req.Namespace != "" {
		if ns, err := s.objs.In(s.objs.Lookup(corev1.SchemeGroupVersion, "namespaces")).Get("", req.Namespace); err == nil {
			req.NamespaceAnnotations = ns.GetAnnotations()
		}
	}
	return s.cfg.Authorizer.Authorize(ctx, req)
}

// The review resources are answered, never stored.
const (
	selfSubjectReviewPath       = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
	selfSubjectAccessReviewPath = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
	subjectAccessReviewPath     = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
	selfSubjectRulesReviewPath  = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"
)

// reviewCodecs decode review requests (JSON, YAML or protobuf).
var reviewCodecs = func() serializer.CodecFactory {
	scheme := runtime.NewScheme()
	authenticationv1.AddToScheme(scheme)
	authorizationv1.AddToScheme(scheme)
	return serializer.NewCodecFactory(scheme)
}()

// serveReview answers `kubectl auth whoami` and `kubectl auth can-i`.
func (s *Server) serveReview(w http.ResponseWriter, r *http.Request, path string, user UserInfo) error {
	if r.Method != http.MethodPost {
		return apierrors.NewMethodNotSupported(schema.GroupResource{Resource: path}, r.Method)
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	decode := func(into runtime.Object) error {
		info, ok := runtime.SerializerInfoForMediaType(reviewCodecs.SupportedMediaTypes(), orJSON(mediaType(r.Header.Get("Content-Type"))))
		if !ok {
			return apierrors.NewBadRequest("unsupported media type: send application/json or application/vnd.kubernetes.protobuf")
		}
		if _, _, err := info.Serializer.Decode(body, nil, into); err != nil {
			return apierrors.NewBadRequest(fmt.Sprintf("the request body is not a valid review: %v", err))
		}
		return nil
	}
	switch path {
	case selfSubjectReviewPath:
		out := &authenticationv1.SelfSubjectReview{TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "SelfSubjectReview"}}
		out.Status.UserInfo = authenticationv1.UserInfo{Username: user.Username, Groups: user.Groups,
			Extra: map[string]authenticationv1.ExtraValue{"mycel.io/spiffe-id": {user.SPIFFEID}}}
		s.writeJSON(w, http.StatusCreated, out)
	case selfSubjectAccessReviewPath:
		in := &authorizationv1.SelfSubjectAccessReview{}
		if err := decode(in); err != nil {
			return err
		}
		in.Status = s.review(r.Context(), user, in.Spec.ResourceAttributes)
		in.TypeMeta = metav1.TypeMeta{APIVersion: "authorization.k8s.io/v1", Kind: "SelfSubjectAccessReview"}
		s.writeJSON(w, http.StatusCreated, in)
	case subjectAccessReviewPath:
		if err := s.authorize(r.Context(), AuthzRequest{User: user, Verb: "create", APIGroup: "authorization.k8s.io", Resource: "subjectaccessreviews"}); err != nil {
			return apierrors.NewForbidden(schema.GroupResource{Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}, "", err)
		}
		in := &authorizationv1.SubjectAccessReview{}
		if err := decode(in); err != nil {
			return err
		}
		in.Status = s.review(r.Context(), UserInfo{Username: in.Spec.User, Groups: in.Spec.Groups}, in.Spec.ResourceAttributes)
		in.TypeMeta = metav1.TypeMeta{APIVersion: "authorization.k8s.io/v1", Kind: "SubjectAccessReview"}
		s.writeJSON(w, http.StatusCreated, in)
	default:
		return apierrors.NewBadRequest("listing every permission (SelfSubjectRulesReview, `kubectl auth can-i --list`) is not supported by Mycel: ask about one verb and resource, e.g. `kubectl auth can-i create deployments -n team`")
	}
	return nil
}

// review evaluates the authorization policy for attrs as user would be;
// non-resource requests are allowed to every user of the trust domain.
func (s *Server) review(ctx context.Context, user UserInfo, attrs *authorizationv1.ResourceAttributes) authorizationv1.SubjectAccessReviewStatus {
	if attrs == nil {
		return authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "every user of the trust domain may reach non-resource URLs"}
	}
	err := s.authorize(ctx, AuthzRequest{User: user, Verb: attrs.Verb, APIGroup: attrs.Group, Resource: attrs.Resource,
		Subresource: attrs.Subresource, Namespace: attrs.Namespace, Name: attrs.Name})
	if err != nil {
		return authorizationv1.SubjectAccessReviewStatus{Denied: true, Reason: err.Error()}
	}
	return authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "allowed by the authorization policy"}
}

func orJSON(mt string) string {
	if mt == "" {
		return "application/json"
	}
	return mt
}
