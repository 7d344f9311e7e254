package objects

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mycelfabric/mycel/securityplane/datakey"
	"github.com/mycelfabric/mycel/workloadplane/store"
)

// newTestObjects is an object layer over a fresh store with a "default"
// namespace and a data key; it returns the store's file too.
func newTestObjects(t *testing.T) (*Objects, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := store.Open(path, store.Options{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	k, err := datakey.New(time.Now(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	o := New(st, Config{Sealer: datakey.NewRing(nil, k)})
	if err := o.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}); err != nil {
		t.Fatal(err)
	}
	return o, path
}

func inDefault(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default"}
}

// wantInvalid fails unless err is a 422 naming field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), field) {
		t.Fatalf("got %v, want 422 Invalid naming %s", err, field)
	}
}

func TestConfigMapValidation(t *testing.T) {
	o, _ := newTestObjects(t)
	ctx := context.Background()
	wantInvalid(t, o.Create(ctx, &corev1.ConfigMap{ObjectMeta: inDefault("bad-key"), Data: map[string]string{"a/b": "x"}}), "data[a/b]")
	wantInvalid(t, o.Create(ctx, &corev1.ConfigMap{ObjectMeta: inDefault("dup"), Data: map[string]string{"k": "x"}, BinaryData: map[string][]byte{"k": {1}}}), "data[k]")
	big := strings.Repeat("x", MaxDataSize/2+1)
	wantInvalid(t, o.Create(ctx, &corev1.ConfigMap{ObjectMeta: inDefault("big"), Data: map[string]string{"a": big, "b": big}}), "Too long")

	cm := &corev1.ConfigMap{ObjectMeta: inDefault("frozen"), Data: map[string]string{"k": "v"}, Immutable: new(true)}
	if err := o.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["k"] = "changed"
	wantInvalid(t, o.Update(ctx, cm), "field is immutable when `immutable` is set")
	cm.Data["k"] = "v"
	cm.Immutable = new(false)
	wantInvalid(t, o.Update(ctx, cm), "immutable")
	// Metadata of an immutable ConfigMap may still change.
	cm.Immutable = new(true)
	cm.Labels = map[string]string{"app": "web"}
	if err := o.Update(ctx, cm); err != nil {
		t.Fatalf("label an immutable ConfigMap: %v", err)
	}
}

func TestSecretsAreSealedAndValidatedByType(t *testing.T) {
	o, path := newTestObjects(t)
	ctx := context.Background()
	s := &corev1.Secret{ObjectMeta: inDefault("db"), StringData: map[string]string{"password": "hunter2-very-secret"}}
	if err := o.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	got := &corev1.Secret{ObjectMeta: inDefault("db")}
	if err := o.Get(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got.Type != corev1.SecretTypeOpaque || string(got.Data["password"]) != "hunter2-very-secret" || got.StringData != nil {
		t.Fatalf("stored secret = type %q data %q stringData %v; want Opaque with stringData merged into data", got.Type, got.Data, got.StringData)
	}
	// Neither the value nor its base64 is in the store file.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, needle := range []string{"hunter2-very-secret", "aHVudGVyMi12ZXJ5LXNlY3JldA"} {
		if bytes.Contains(raw, []byte(needle)) {
			t.Fatalf("the store file contains %q", needle)
		}
	}
	// Without a data key, a Secret is neither written nor read.
	bare := New(o.store, Config{})
	if err := bare.Get(ctx, &corev1.Secret{ObjectMeta: inDefault("db")}); !apierrors.IsInternalError(err) {
		t.Fatalf("read a Secret without a data key: %v", err)
	}

	for _, tc := range []struct {
		typ   corev1.SecretType
		data  map[string][]byte
		field string
	}{
		{corev1.SecretTypeTLS, map[string][]byte{"tls.crt": []byte("c")}, "data[tls.key]"},
		{corev1.SecretTypeDockerConfigJson, map[string][]byte{".dockerconfigjson": []byte("{not json")}, "data[.dockerconfigjson]"},
		{corev1.SecretTypeBasicAuth, map[string][]byte{}, "data[username]"},
		{corev1.SecretTypeSSHAuth, nil, "data[ssh-privatekey]"},
		{corev1.SecretTypeServiceAccountToken, nil, "kubernetes.io/service-account.name"},
	} {
		err := o.Create(ctx, &corev1.Secret{ObjectMeta: inDefault("s"), Type: tc.typ, Data: tc.data})
		wantInvalid(t, err, tc.field)
		if strings.Contains(err.Error(), "{not json") {
			t.Fatalf("the error shows the secret's value: %v", err)
		}
	}
	tls := &corev1.Secret{ObjectMeta: inDefault("tls"), Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("k")}}
	if err := o.Create(ctx, tls); err != nil {
		t.Fatal(err)
	}
	tls.Type = corev1.SecretTypeOpaque
	wantInvalid(t, o.Update(ctx, tls), "type")
}

func TestPodEnvValidation(t *testing.T) {
	o, _ := newTestObjects(t)
	ctx := context.Background()
	cmKey := &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: "k"}
	for _, tc := range []struct {
		name  string
		c     corev1.Container
		field string
	}{
		{"two sources", corev1.Container{Env: []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: cmKey,
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}}, "may not have more than one field"},
		{"no source", corev1.Container{Env: []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{}}}}, "must specify one of"},
		{"value and valueFrom", corev1.Container{Env: []corev1.EnvVar{{Name: "A", Value: "x", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: cmKey}}}}, "may not be specified when `value` is not empty"},
		{"bad name", corev1.Container{Env: []corev1.EnvVar{{Name: "1A", Value: "x"}}}, "env[0].name"},
		{"unknown field", corev1.Container{Env: []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nope"}}}}}, "fieldRef.fieldPath"},
		{"bad key", corev1.Container{Env: []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "a/b"}}}}}, "secretKeyRef.key"},
		{"envFrom both", corev1.Container{EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{}, SecretRef: &corev1.SecretEnvSource{}}}}, "exactly one of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Name, tc.c.Image = "c", "img:1"
			wantInvalid(t, o.Create(ctx, &corev1.Pod{ObjectMeta: inDefault("p"), Spec: corev1.PodSpec{Containers: []corev1.Container{tc.c}}}), tc.field)
		})
	}
}
