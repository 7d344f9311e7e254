package agent

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestEnvFromConfigMapsAndSecrets: a container's environment takes values
// from ConfigMaps, Secrets, the pod and its resources as kubelet's does,
// and waits with CreateContainerConfigError naming what is missing until
// it exists.
func TestEnvFromConfigMapsAndSecrets(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	ref := func(name string) corev1.LocalObjectReference { return corev1.LocalObjectReference{Name: name} }
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{
			Name: "app", Image: image, ImagePullPolicy: corev1.PullNever,
			Args: []string{"--greet=$(GREETING)", "$$(LITERAL)"},
			EnvFrom: []corev1.EnvFromSource{
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: ref("settings")}},
				{Prefix: "DB_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: ref("db")}},
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: ref("absent"), Optional: new(true)}},
			},
			Env: []corev1.EnvVar{
				{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: ref("settings"), Key: "greeting"}}},
				{Name: "MODE", Value: "override"},
				{Name: "URL", Value: "http://$(HOST):80/$(UNDEFINED)"},
				{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: ref("db"), Key: "password"}}},
				{Name: "MAYBE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: ref("db"), Key: "nope", Optional: new(true)}}},
				{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
				{Name: "SA", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
				{Name: "MEM_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
				{Name: "CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
			},
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceCPU: resource.MustParse("1500m")}},
		}}},
	}
	if err := h.objs.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	waiting := func(want string) {
		t.Helper()
		h.sync()
		w := h.get("cfg").Status.ContainerStatuses[0].State.Waiting
		if len(h.containers(p)) != 0 || w == nil || w.Reason != "CreateContainerConfigError" || !strings.Contains(w.Message, want) {
			t.Fatalf("waiting = %+v, want CreateContainerConfigError naming %q", w, want)
		}
	}
	waiting(`configmap "settings" not found`)

	h.objs.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "default"},
		Data: map[string]string{"greeting": "hello", "MODE": "from-configmap", "HOST": "db.local", "1st": "x"}})
	h.now = h.now.Add(h.agent.backoff(1))
	waiting(`secret "db" not found`)

	h.objs.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"}, StringData: map[string]string{"user": "admin"}})
	h.now = h.now.Add(h.agent.backoff(2))
	waiting("couldn't find key password in Secret default/db")

	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"}}
	h.objs.Get(ctx, sec)
	sec.Data["password"] = []byte("s3cret")
	if err := h.objs.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	h.now = h.now.Add(h.agent.backoff(3))
	h.sync()
	cs := h.containers(p)
	if len(cs) != 1 {
		t.Fatalf("%d containers once every reference exists, want 1", len(cs))
	}
	spec := h.fake.Spec(cs[0].ID)
	want := map[string]string{
		"greeting": "hello", "MODE": "override", "HOST": "db.local", "GREETING": "hello",
		"URL": "http://db.local:80/$(UNDEFINED)", "DB_user": "admin", "DB_password": "s3cret", "PASSWORD": "s3cret",
		"APP": "web", "SA": "default", "MEM_MI": "64", "CPU": "2",
	}
	for k, v := range want {
		if spec.Env[k] != v {
			t.Errorf("env %s = %q, want %q", k, spec.Env[k], v)
		}
	}
	for _, k := range []string{"1st", "MAYBE"} {
		if _, ok := spec.Env[k]; ok {
			t.Errorf("env has %s", k)
		}
	}
	if strings.Join(spec.Args, " ") != "--greet=hello $(LITERAL)" {
		t.Errorf("args %q", spec.Args)
	}
}
