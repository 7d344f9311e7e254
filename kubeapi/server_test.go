package kubeapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/workloadplane/objects"
	"github.com/mycelfabric/mycel/workloadplane/store"
)

// denyLabel is an Admitter that denies objects labelled deny=true.
type denyLabel struct{}

func (denyLabel) Admit(_ context.Context, req AdmissionRequest) error {
	if req.Object.(objects.Object).GetLabels()["deny"] == "true" {
		return errors.New("test-rule: objects labelled deny=true are not allowed")
	}
	return nil
}

type fixture struct {
	url     string
	objs    *objects.Objects
	config  *rest.Config // the admin's
	client  *kubernetes.Clientset
	http    *http.Client // with a valid client certificate
	anon    *http.Client // without one
	foreign *http.Client // with a certificate of another CA
	// clientAs returns a client of user name with groups.
	clientAs func(name string, groups ...string) *kubernetes.Clientset
}

func newFixture(t *testing.T, authz ...Authorizer) *fixture {
	t.Helper()
	authority, err := ca.Init(filepath.Join(t.TempDir(), "ca"), "test.example")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{Node: "n1", LogSize: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	objs := objects.New(st, objects.Config{})
	if err := objs.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Objects: objs, Bundle: authority.Bundle(), Admitter: denyLabel{}, MaxBodyBytes: 64 << 10, Metrics: fixedMetrics{}}
	if len(authz) > 0 {
		cfg.Authorizer = authz[0]
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	ts.StartTLS()
	t.Cleanup(ts.Close)

	userCert := func(a *ca.Authority, name string, groups ...string) ([]byte, []byte) {
		id, _ := ca.UserID(a.TrustDomain(), name)
		is, err := a.Issue(ca.Request{ID: id, Client: true, Organizations: groups})
		if err != nil {
			t.Fatal(err)
		}
		key, _ := is.KeyPEM()
		return is.CertPEM(), key
	}
	certPEM, keyPEM := userCert(authority, "alice")
	other, _ := ca.Init(filepath.Join(t.TempDir(), "other"), "test.example")
	otherCert, otherKey := userCert(other, "mallory")

	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	mk := func(cert, key []byte) *http.Client {
		cfg := &tls.Config{RootCAs: pool}
		if cert != nil {
			pair, err := tls.X509KeyPair(cert, key)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
	}
	serverCA := ca.EncodeCerts(ts.Certificate())
	configOf := func(cert, key []byte) *rest.Config {
		return &rest.Config{
			Host:            ts.URL,
			TLSClientConfig: rest.TLSClientConfig{CertData: cert, KeyData: key, CAData: serverCA},
			ContentConfig:   rest.ContentConfig{ContentType: "application/vnd.kubernetes.protobuf"},
		}
	}
	clientOf := func(cert, key []byte) *kubernetes.Clientset {
		cs, err := kubernetes.NewForConfig(configOf(cert, key))
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	return &fixture{url: ts.URL, objs: objs, config: configOf(certPEM, keyPEM), client: clientOf(certPEM, keyPEM), http: mk(certPEM, keyPEM), anon: mk(nil, nil), foreign: mk(otherCert, otherKey),
		clientAs: func(name string, groups ...string) *kubernetes.Clientset {
			return clientOf(userCert(authority, name, groups...))
		}}
}

func (f *fixture) do(t *testing.T, c *http.Client, method, path, contentType, body string, header ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data, resp.Header
}

func status(t *testing.T, body []byte) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" {
		t.Fatalf("not a metav1.Status: %s", body)
	}
	return st
}

func webDeployment(name string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img:1"}}},
			},
		},
	}
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t)
	for name, c := range map[string]*http.Client{"no certificate": f.anon, "foreign CA": f.foreign} {
		t.Run(name, func(t *testing.T) {
			code, body, _ := f.do(t, c, "GET", "/api/v1/namespaces/default/pods", "", "")
			if st := status(t, body); code != 401 || st.Reason != metav1.StatusReasonUnauthorized {
				t.Fatalf("got %d %s, want 401 Unauthorized", code, body)
			}
		})
	}
	if code, _, _ := f.do(t, f.anon, "GET", "/healthz", "", ""); code != 200 {
		t.Fatalf("/healthz without certificate: %d", code)
	}
}

func TestCRUDWithTypedClient(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	deps := f.client.AppsV1().Deployments("default")
	created, err := deps.Create(ctx, webDeployment("web", 2), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create (protobuf body): %v", err)
	}
	if created.UID == "" || created.Generation != 1 || created.ResourceVersion == "" || created.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Fatalf("server did not set uid/generation/resourceVersion/defaults: %+v", created.ObjectMeta)
	}
	if _, err := deps.Create(ctx, webDeployment("web", 2), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create: %v, want AlreadyExists", err)
	}
	if _, err := f.client.AppsV1().Deployments("nowhere").Create(ctx, webDeployment("x", 1), metav1.CreateOptions{}); !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), `namespaces "nowhere" not found`) {
		t.Fatalf("create in missing namespace: %v", err)
	}

	// Optimistic concurrency: an update from a stale copy conflicts.
	stale := created.DeepCopy()
	created.Spec.Replicas = new(int32(3))
	updated, err := deps.Update(ctx, created, metav1.UpdateOptions{})
	if err != nil || updated.Generation != 2 {
		t.Fatalf("update: %v generation %d, want 2", err, updated.Generation)
	}
	stale.Spec.Replicas = new(int32(7))
	if _, err := deps.Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: %v, want Conflict", err)
	}

	// Status is a separate subresource.
	updated.Status.ReadyReplicas = 3
	updated.Spec.Replicas = new(int32(9))
	st, err := deps.UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if err != nil || st.Status.ReadyReplicas != 3 || *st.Spec.Replicas != 3 {
		t.Fatalf("status update: %v ready %d replicas %d; want status changed, spec kept", err, st.Status.ReadyReplicas, *st.Spec.Replicas)
	}

	// Scale subresource.
	sc, err := deps.GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil || sc.Spec.Replicas != 3 || sc.Status.Selector != "app=web" {
		t.Fatalf("get scale: %v %+v", err, sc)
	}
	sc.Spec.Replicas = 5
	if _, err := deps.UpdateScale(ctx, "web", sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := deps.Get(ctx, "web", metav1.GetOptions{}); *got.Spec.Replicas != 5 {
		t.Fatalf("replicas after scale: %d", *got.Spec.Replicas)
	}

	// Selectors.
	deps.Create(ctx, webDeployment("api", 1), metav1.CreateOptions{})
	list, err := deps.List(ctx, metav1.ListOptions{LabelSelector: "app in (api)"})
	if err != nil || len(list.Items) != 1 || list.Items[0].Name != "api" {
		t.Fatalf("label selector: %v %d items", err, len(list.Items))
	}
	list, err = deps.List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "web").String()})
	if err != nil || len(list.Items) != 1 || list.Items[0].Name != "web" {
		t.Fatalf("field selector: %v %d items", err, len(list.Items))
	}
	if _, err := deps.List(ctx, metav1.ListOptions{FieldSelector: "spec.bogus=1"}); !apierrors.IsBadRequest(err) {
		t.Fatalf("unsupported field selector: %v, want BadRequest", err)
	}

	// kubectl sends DeleteOptions as JSON without apiVersion and kind.
	if code, body, _ := f.do(t, f.http, "DELETE", "/apis/apps/v1/namespaces/default/deployments/web", "application/json", `{"propagationPolicy":"Background"}`); code != 200 {
		t.Fatalf("delete with kubectl's body: %d %s", code, body)
	}
	if _, err := deps.Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestPatchTypes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	deps := f.client.AppsV1().Deployments("default")
	if _, err := deps.Create(ctx, webDeployment("web", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		typ   types.PatchType
		patch string
		check func(*appsv1.Deployment) bool
	}{
		{types.StrategicMergePatchType, `{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"img:2"}]}}}}`,
			func(d *appsv1.Deployment) bool {
				return len(d.Spec.Template.Spec.Containers) == 1 && d.Spec.Template.Spec.Containers[0].Image == "img:2"
			}},
		{types.MergePatchType, `{"metadata":{"labels":{"tier":"front"}}}`,
			func(d *appsv1.Deployment) bool { return d.Labels["tier"] == "front" && d.Labels["app"] == "web" }},
		{types.JSONPatchType, `[{"op":"replace","path":"/spec/replicas","value":4}]`,
			func(d *appsv1.Deployment) bool { return *d.Spec.Replicas == 4 }},
	}
	for _, tt := range tests {
		t.Run(string(tt.typ), func(t *testing.T) {
			d, err := deps.Patch(ctx, "web", tt.typ, []byte(tt.patch), metav1.PatchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(d) {
				t.Fatalf("patch not applied: %+v", d)
			}
		})
	}
}

// TestServerSideApply: apply creates an absent object, records who owns
// which fields in managedFields, answers 409 naming the fields and their
// manager when another manager changes them, takes them over with force,
// and writes nothing under dryRun.
func TestServerSideApply(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	deps := f.client.AppsV1().Deployments("default")
	cfg := func(replicas int, image string) []byte {
		return []byte(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: ssa, labels: {app: ssa}}
spec:
  replicas: %d
  selector: {matchLabels: {app: ssa}}
  template:
    metadata: {labels: {app: ssa}}
    spec: {containers: [{name: c, image: %q}]}
`, replicas, image))
	}
	d, err := deps.Patch(ctx, "ssa", types.ApplyYAMLPatchType, cfg(2, "img:1"), metav1.PatchOptions{FieldManager: "alice"})
	if err != nil {
		t.Fatalf("apply of an absent object: %v", err)
	}
	if *d.Spec.Replicas != 2 || len(d.ManagedFields) != 1 || d.ManagedFields[0].Manager != "alice" || d.ManagedFields[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Fatalf("created by apply: replicas %d, managedFields %+v", *d.Spec.Replicas, d.ManagedFields)
	}
	_, err = deps.Patch(ctx, "ssa", types.ApplyYAMLPatchType, cfg(5, "img:1"), metav1.PatchOptions{FieldManager: "bob"})
	var se apierrors.APIStatus
	if !apierrors.IsConflict(err) || !errors.As(err, &se) || se.Status().Details == nil || len(se.Status().Details.Causes) == 0 ||
		se.Status().Details.Causes[0].Field != ".spec.replicas" || !strings.Contains(se.Status().Details.Causes[0].Message, `"alice"`) {
		t.Fatalf("apply of a field another manager owns: %v", err)
	}
	if _, err := deps.Patch(ctx, "ssa", types.ApplyYAMLPatchType, cfg(7, "img:1"), metav1.PatchOptions{FieldManager: "bob", Force: new(true), DryRun: []string{"All"}}); err != nil {
		t.Fatal(err)
	}
	if d, _ := deps.Get(ctx, "ssa", metav1.GetOptions{}); *d.Spec.Replicas != 2 {
		t.Fatalf("a dry-run apply wrote replicas %d", *d.Spec.Replicas)
	}
	d, err = deps.Patch(ctx, "ssa", types.ApplyYAMLPatchType, cfg(5, "img:1"), metav1.PatchOptions{FieldManager: "bob", Force: new(true)})
	if err != nil || *d.Spec.Replicas != 5 {
		t.Fatalf("forced apply: %v", err)
	}
	owners := map[string]bool{}
	for _, e := range d.ManagedFields {
		owners[e.Manager] = strings.Contains(e.FieldsV1.GetRawString(), `"f:replicas"`)
	}
	if !owners["bob"] || owners["alice"] {
		t.Fatalf("after the forced apply, replicas owned by %v", owners)
	}
	// A plain update is recorded as an Update by its manager.
	d.Labels["tier"] = "web"
	d, err = deps.Update(ctx, d, metav1.UpdateOptions{FieldManager: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	var carol bool
	for _, e := range d.ManagedFields {
		carol = carol || e.Manager == "carol" && e.Operation == metav1.ManagedFieldsOperationUpdate && strings.Contains(e.FieldsV1.GetRawString(), "f:tier")
	}
	if !carol {
		t.Fatalf("an update's fields in managedFields: %+v", d.ManagedFields)
	}
	if _, err := deps.Patch(ctx, "ssa", types.ApplyYAMLPatchType, cfg(1, "img:1"), metav1.PatchOptions{}); !apierrors.IsBadRequest(err) {
		t.Fatalf("apply without a fieldManager: %v", err)
	}
}

func TestValidationAndAdmission(t *testing.T) {
	f := newFixture(t)
	bad := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":-1,"selector":{"matchLabels":{"app":"a"}},"template":{"metadata":{"labels":{"app":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}`
	code, body, _ := f.do(t, f.http, "POST", "/apis/apps/v1/namespaces/default/deployments", "application/json", bad)
	st := status(t, body)
	if code != 422 || st.Reason != metav1.StatusReasonInvalid {
		t.Fatalf("invalid deployment: %d %s", code, body)
	}
	var causes []string
	for _, c := range st.Details.Causes {
		causes = append(causes, c.Field)
	}
	if got := strings.Join(causes, ","); !strings.Contains(got, "spec.replicas") || !strings.Contains(got, "spec.template.metadata.labels") {
		t.Fatalf("causes %q lack the field paths", got)
	}

	unknown := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containerz":[]}}`
	code, body, _ = f.do(t, f.http, "POST", "/api/v1/namespaces/default/pods?fieldValidation=Strict", "application/json", unknown)
	if code != 400 || !strings.Contains(string(body), `unknown field \"spec.containerz\"`) {
		t.Fatalf("strict validation: %d %s", code, body)
	}
	_, _, hdr := f.do(t, f.http, "POST", "/api/v1/namespaces/default/pods?fieldValidation=Warn", "application/json", unknown)
	if !strings.Contains(hdr.Get("Warning"), "spec.containerz") {
		t.Fatalf("warn validation: no Warning header: %v", hdr)
	}

	code, body, _ = f.do(t, f.http, "POST", "/api/v1/namespaces/default/pods", "application/json", `{"apiVersion":"v1","kind":"Pod",`)
	if code != 400 {
		t.Fatalf("malformed JSON: %d %s", code, body)
	}
	code, body, _ = f.do(t, f.http, "POST", "/api/v1/namespaces/default/pods", "application/json", `{"kind":"Pod","metadata":{"name":"big","annotations":{"a":"`+strings.Repeat("x", 100<<10)+`"}}}`)
	if code != 413 {
		t.Fatalf("oversized body: %d %s", code, body)
	}

	denied := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"deny":"true"}},"spec":{"containers":[{"name":"c","image":"i"}]}}`
	code, body, _ = f.do(t, f.http, "POST", "/api/v1/namespaces/default/pods", "application/json", denied)
	if st := status(t, body); code != 403 || !strings.Contains(st.Message, "test-rule:") {
		t.Fatalf("admission: %d %s", code, body)
	}
	if code, _, _ := f.do(t, f.http, "GET", "/api/v1/namespaces/default/pods/p", "", ""); code != 404 {
		t.Fatalf("denied pod stored: %d", code)
	}
}

func TestTableAndDiscovery(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.client.AppsV1().Deployments("default").Create(ctx, webDeployment("web", 2), metav1.CreateOptions{})
	code, body, _ := f.do(t, f.http, "GET", "/apis/apps/v1/namespaces/default/deployments", "", "",
		"Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
	var tbl metav1.Table
	if err := json.Unmarshal(body, &tbl); err != nil || code != 200 || tbl.Kind != "Table" {
		t.Fatalf("table: %d %v %s", code, err, body)
	}
	var cols []string
	for _, c := range tbl.ColumnDefinitions {
		cols = append(cols, c.Name)
	}
	if strings.Join(cols, ",") != "Name,Ready,Up-to-date,Available,Age,Containers,Images,Selector" || len(tbl.Rows) != 1 || tbl.Rows[0].Cells[1] != "0/2" {
		t.Fatalf("columns %v rows %+v", cols, tbl.Rows)
	}

	_, body, hdr := f.do(t, f.http, "GET", "/apis", "", "", "Accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")
	if !strings.Contains(hdr.Get("Content-Type"), "as=APIGroupDiscoveryList") || !strings.Contains(string(body), `"deployments"`) {
		t.Fatalf("aggregated discovery: %s %s", hdr.Get("Content-Type"), body)
	}
	_, resources, err := f.client.Discovery().ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, l := range resources {
		for _, r := range l.APIResources {
			found[l.GroupVersion+"/"+r.Name] = true
		}
	}
	for _, want := range []string{"v1/pods", "v1/pods/log", "v1/nodes", "v1/namespaces", "v1/events", "apps/v1/deployments", "apps/v1/deployments/scale", "apps/v1/replicasets"} {
		if !found[want] {
			t.Errorf("discovery lacks %s", want)
		}
	}
	if code, body, _ := f.do(t, f.http, "GET", "/openapi/v3", "", ""); code != 200 || !strings.Contains(string(body), "apis/apps/v1") {
		t.Fatalf("openapi v3 index: %d %s", code, body)
	}
}

func TestWatch(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deps := f.client.AppsV1().Deployments("default")
	first, _ := deps.Create(ctx, webDeployment("a", 1), metav1.CreateOptions{})

	w, err := deps.Watch(ctx, metav1.ListOptions{ResourceVersion: first.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	deps.Create(ctx, webDeployment("b", 1), metav1.CreateOptions{})
	deps.Delete(ctx, "a", metav1.DeleteOptions{})
	var got []string
	for len(got) < 2 {
		select {
		case ev := <-w.ResultChan():
			got = append(got, string(ev.Type)+" "+ev.Object.(*appsv1.Deployment).Name)
		case <-ctx.Done():
			t.Fatalf("watch events so far: %v", got)
		}
	}
	if strings.Join(got, ",") != "ADDED b,DELETED a" {
		t.Fatalf("events %v", got)
	}

	// Resuming from a compacted resourceVersion answers 410 Expired in-stream.
	for i := range 30 {
		f.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)}}, metav1.CreateOptions{})
	}
	code, body, _ := f.do(t, f.http, "GET", "/apis/apps/v1/namespaces/default/deployments?watch=true&resourceVersion=1&timeoutSeconds=1", "", "")
	var ev metav1.WatchEvent
	if err := json.Unmarshal(body, &ev); err != nil || code != 200 || ev.Type != "ERROR" || !strings.Contains(string(ev.Object.Raw), `"code":410`) {
		t.Fatalf("watch from compacted rv: %d %s", code, body)
	}

	// An informer (client-go's watch-list with sendInitialEvents) syncs and
	// sees later changes.
	factory := informers.NewSharedInformerFactory(f.client, 0)
	inf := factory.Apps().V1().Deployments().Informer()
	seen := make(chan string, 10)
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) { seen <- obj.(*appsv1.Deployment).Name }})
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer never synced")
	}
	if got := <-seen; got != "b" {
		t.Fatalf("initial object %q, want b", got)
	}
	deps.Create(ctx, webDeployment("c", 1), metav1.CreateOptions{})
	select {
	case got := <-seen:
		if got != "c" {
			t.Fatalf("informer saw %q, want c", got)
		}
	case <-ctx.Done():
		t.Fatal("informer missed a create")
	}
	var _ watch.Interface = w
}

func TestWatchFlushesHeadersAtOnce(t *testing.T) {
	f := newFixture(t)
	req, _ := http.NewRequest("GET", f.url+"/apis/apps/v1/namespaces/default/deployments?watch=true&resourceVersion=0", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := f.http.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("headers did not arrive: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("watch: %d", resp.StatusCode)
	}
}

// TestWatchWithSelectorSeesObjectsLeaveAndEnter: as with kube-apiserver, a
// watch filtered by labels gets DELETED for an object relabelled out of
// its selector and ADDED for one relabelled into it, so a filtered
// informer drops and picks up objects instead of keeping stale ones.
func TestWatchWithSelectorSeesObjectsLeaveAndEnter(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deps := f.client.AppsV1().Deployments("default")
	d, err := deps.Create(ctx, webDeployment("a", 1), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := deps.Watch(ctx, metav1.ListOptions{ResourceVersion: d.ResourceVersion, LabelSelector: "tier=front"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	relabel := func(tier string) {
		t.Helper()
		patch := `{"metadata":{"labels":{"tier":"` + tier + `"}}}`
		if _, err := deps.Patch(ctx, "a", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	relabel("front") // enters the selector
	if _, err := deps.Patch(ctx, "a", types.MergePatchType, []byte(`{"metadata":{"annotations":{"x":"1"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// Still in it after an annotation; then it leaves.
	relabel("back")
	relabel("db") // neither before nor after: nothing
	relabel("front")
	var got []string
	for len(got) < 4 {
		select {
		case ev := <-w.ResultChan():
			got = append(got, string(ev.Type)+" "+ev.Object.(*appsv1.Deployment).Labels["tier"])
		case <-ctx.Done():
			t.Fatalf("watch events so far: %v", got)
		}
	}
	if want := "ADDED front,MODIFIED front,DELETED front,ADDED front"; strings.Join(got, ",") != want {
		t.Fatalf("events %v, want %s", got, want)
	}
}
