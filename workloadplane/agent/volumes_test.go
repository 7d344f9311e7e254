package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// TestVolumesProjectAndFollowUpdates: ConfigMap, Secret, downward API and
// projected volumes appear as files with their modes, emptyDirs as
// writable directories, each bound where the container mounts it; an
// update of a ConfigMap reaches the mounted directory at the next sync but
// not a subPath mount; the pod's directories go with the pod.
func TestVolumesProjectAndFollowUpdates(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.objs.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Data: map[string]string{"index.html": "v1", "nginx.conf": "conf-v1"}})
	h.objs.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: "default"},
		StringData: map[string]string{"tls.key": "KEY", "tls.crt": "CRT"}})
	mode := int32(0o400)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "vols", Namespace: "default", Labels: map[string]string{"tier": "front"}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{
			Name: "app", Image: image, ImagePullPolicy: corev1.PullNever,
			VolumeMounts: []corev1.VolumeMount{
				{Name: "html", MountPath: "/usr/share/html"},
				{Name: "html", MountPath: "/etc/nginx/nginx.conf", SubPath: "nginx.conf"},
				{Name: "certs", MountPath: "/certs"},
				{Name: "info", MountPath: "/info"},
				{Name: "all", MountPath: "/all"},
				{Name: "scratch", MountPath: "/tmp/scratch"},
				{Name: "shm", MountPath: "/dev/cache"},
			},
		}}, Volumes: []corev1.Volume{
			{Name: "html", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web"}}}},
			{Name: "certs", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls", DefaultMode: &mode,
				Items: []corev1.KeyToPath{{Key: "tls.key", Path: "private/key.pem"}}}}},
			{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
				{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}}},
			{Name: "all", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "web"}, Items: []corev1.KeyToPath{{Key: "index.html", Path: "page"}}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "tls"}, Items: []corev1.KeyToPath{{Key: "tls.crt", Path: "crt"}}}},
			}}}},
			{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "shm", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		}},
	}
	if err := h.objs.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	h.sync()
	cs := h.containers(p)
	if len(cs) != 1 {
		t.Fatalf("%d containers, want 1; status %+v", len(cs), h.get("vols").Status)
	}
	mounts := map[string]rt.Mount{}
	for _, m := range h.fake.Spec(cs[0].ID).Mounts {
		mounts[m.Destination] = m
	}
	read := func(dest, rel string) string {
		t.Helper()
		m, ok := mounts[dest]
		if !ok {
			t.Fatalf("no mount at %s", dest)
		}
		b, err := os.ReadFile(filepath.Join(m.Source, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read("/usr/share/html", "index.html"); got != "v1" {
		t.Fatalf("index.html = %q", got)
	}
	if got := read("/etc/nginx/nginx.conf", ""); got != "conf-v1" {
		t.Fatalf("subPath nginx.conf = %q", got)
	}
	if got := read("/certs", "private/key.pem"); got != "KEY" {
		t.Fatalf("secret item = %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(mounts["/certs"].Source, "private/key.pem")); fi.Mode().Perm() != 0o400 {
		t.Fatalf("secret file mode %v, want 0400", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(mounts["/certs"].Source, "tls.crt")); err == nil {
		t.Fatal("a key not in items was projected")
	}
	if got := read("/info", "labels"); got != `tier="front"` {
		t.Fatalf("downward labels = %q", got)
	}
	if read("/all", "page") != "v1" || read("/all", "crt") != "CRT" {
		t.Fatal("projected volume content")
	}
	for dest, ro := range map[string]bool{"/usr/share/html": true, "/certs": true, "/tmp/scratch": false, "/dev/cache": false} {
		if mounts[dest].ReadOnly != ro {
			t.Errorf("%s read-only = %v, want %v", dest, mounts[dest].ReadOnly, ro)
		}
	}
	if !strings.HasPrefix(mounts["/tmp/scratch"].Source, h.volumeDir) || !strings.HasPrefix(mounts["/dev/cache"].Source, h.memoryDir) ||
		!strings.HasPrefix(mounts["/certs"].Source, h.memoryDir) {
		t.Fatal("emptyDir on disk, Secrets and Memory emptyDirs in memory")
	}

	// An update reaches the mounted directory, not the subPath mount.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}}
	h.objs.Get(ctx, cm)
	cm.Data = map[string]string{"index.html": "v2", "nginx.conf": "conf-v2"}
	if err := h.objs.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	h.sync()
	if got := read("/usr/share/html", "index.html"); got != "v2" {
		t.Fatalf("after update index.html = %q, want v2", got)
	}
	if got := read("/etc/nginx/nginx.conf", ""); got != "conf-v1" {
		t.Fatalf("after update the subPath file = %q, want it unchanged", got)
	}

	// Gone with the pod.
	zero := int64(0)
	h.objs.Delete(ctx, h.get("vols"), &zero)
	h.sync()
	for _, root := range []string{h.volumeDir, h.memoryDir} {
		if entries, _ := os.ReadDir(root); len(entries) != 0 {
			t.Fatalf("%s still holds %v after the pod was deleted", root, entries)
		}
	}
}

// TestMissingVolumeSourceWaits: a pod whose ConfigMap does not exist yet
// starts no container and says why in an event, then starts once it does.
func TestMissingVolumeSourceWaits(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "later", Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{
			Name: "app", Image: image, ImagePullPolicy: corev1.PullNever, VolumeMounts: []corev1.VolumeMount{{Name: "cfg", MountPath: "/cfg"}},
		}}, Volumes: []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}}}},
	}
	if err := h.objs.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	h.sync()
	if len(h.containers(p)) != 0 {
		t.Fatal("started a container without its volume")
	}
	var events corev1.EventList
	h.objs.List(ctx, &events, "default", nil)
	found := false
	for _, e := range events.Items {
		found = found || (e.Reason == "FailedMount" && strings.Contains(e.Message, `configmap "settings" not found`))
	}
	if !found {
		t.Fatalf("no FailedMount event naming the ConfigMap: %+v", events.Items)
	}
	if w := h.get("later").Status.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "ContainerCreating" {
		t.Fatalf("container state %+v, want waiting ContainerCreating", w)
	}
	h.objs.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "default"}, Data: map[string]string{"a": "b"}})
	h.sync()
	if len(h.containers(p)) != 1 {
		t.Fatal("no container once the ConfigMap exists")
	}
}
