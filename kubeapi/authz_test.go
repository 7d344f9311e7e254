package kubeapi

import (
	"context"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mycelfabric/mycel/policies"
	"github.com/mycelfabric/mycel/securityplane/policy"
)

type engineAuthorizer struct{ e *policy.Engine }

func (a engineAuthorizer) Authorize(ctx context.Context, req AuthzRequest) error {
	return a.e.Authorize(ctx, req)
}

// TestAuthorizationPolicy: with the default policy, an admin does
// everything, another user reads all but Secrets and writes only where a
// namespace's mycel.io/writers names them; whoami and can-i answer as the
// policy decides.
func TestAuthorizationPolicy(t *testing.T) {
	ctx := context.Background()
	engine, err := policy.Load(ctx, policies.Default, "policies")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, engineAuthorizer{engine})
	admin, bob := f.clientAs("root", "mycel:admins"), f.clientAs("bob")

	if _, err := bob.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("bob lists pods: %v", err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}}
	_, err = bob.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "namespace-writers") {
		t.Fatalf("bob creates a ConfigMap in default: %v, want 403 naming the rule", err)
	}
	if _, err := bob.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("bob lists Secrets: %v, want 403", err)
	}
	can := func(c interface {
		Create(context.Context, *authorizationv1.SelfSubjectAccessReview, metav1.CreateOptions) (*authorizationv1.SelfSubjectAccessReview, error)
	}, verb, resource string) bool {
		t.Helper()
		r, err := c.Create(ctx, &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "default", Verb: verb, Resource: resource}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("can-i %s %s: %v", verb, resource, err)
		}
		return r.Status.Allowed
	}
	if can(bob.AuthorizationV1().SelfSubjectAccessReviews(), "create", "configmaps") || !can(bob.AuthorizationV1().SelfSubjectAccessReviews(), "list", "pods") {
		t.Fatal("bob's can-i does not match the policy")
	}

	// The admin grants bob the namespace.
	ns, err := admin.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Annotations = map[string]string{"mycel.io/writers": "alice, bob"}
	if _, err := admin.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("admin annotates the namespace: %v", err)
	}
	if _, err := bob.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("bob, a writer of default, creates a ConfigMap: %v", err)
	}
	if !can(bob.AuthorizationV1().SelfSubjectAccessReviews(), "create", "configmaps") {
		t.Fatal("can-i disagrees with the policy after the grant")
	}
	if _, err := bob.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mine"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("bob creates a namespace: %v, want 403", err)
	}

	who, err := bob.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || who.Status.UserInfo.Username != "bob" || !strings.HasSuffix(who.Status.UserInfo.Extra["mycel.io/spiffe-id"][0], "/user/bob") {
		t.Fatalf("whoami: %+v, %v", who, err)
	}
	if w, _ := admin.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{}); len(w.Status.UserInfo.Groups) != 1 || w.Status.UserInfo.Groups[0] != "mycel:admins" {
		t.Fatalf("admin's groups: %+v", w.Status.UserInfo)
	}

	// SubjectAccessReview: only for those the policy lets create them.
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: "carol",
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "default", Verb: "delete", Resource: "pods"}}}
	if _, err := bob.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("bob reviews carol: %v, want 403", err)
	}
	got, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil || got.Status.Allowed || !got.Status.Denied {
		t.Fatalf("admin reviews carol: %+v, %v; want denied", got.Status, err)
	}
}
