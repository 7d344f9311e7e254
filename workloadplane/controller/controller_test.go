package controller

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mycelfabric/mycel/workloadplane/objects"
	"github.com/mycelfabric/mycel/workloadplane/store"
)

type harness struct {
	t    *testing.T
	objs *objects.Objects
	m    *Manager
	ctx  context.Context
}

func newHarness(t *testing.T) *harness {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	objs := objects.New(st, objects.Config{})
	ctx := context.Background()
	objs.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	m, err := New(Config{Client: objs})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, objs: objs, m: m, ctx: ctx}
}

func (h *harness) deployment(name string, replicas int32, surge, unavailable intstr.IntOrString) *appsv1.Deployment {
	return h.deploymentIn("default", name, replicas, surge, unavailable)
}

func (h *harness) deploymentIn(ns, name string, replicas int32, surge, unavailable intstr.IntOrString) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img:1"}}},
			},
		},
	}
	if err := h.objs.Create(h.ctx, d); err != nil {
		h.t.Fatal(err)
	}
	return d
}

func (h *harness) pods() []corev1.Pod {
	var list corev1.PodList
	if err := h.objs.List(h.ctx, &list, "default", nil); err != nil {
		h.t.Fatal(err)
	}
	return list.Items
}

// kubelet plays the node: pods become Ready, deleted pods go away.
func (h *harness) kubelet() {
	for _, p := range h.pods() {
		if p.DeletionTimestamp != nil {
			zero := int64(0)
			h.objs.Delete(h.ctx, &p, &zero)
			continue
		}
		if p.Status.Phase != corev1.PodRunning {
			p.Status.Phase = corev1.PodRunning
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			if err := h.objs.UpdateStatus(h.ctx, &p); err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

// bind plays the scheduler.
func (h *harness) bind() {
	for _, p := range h.pods() {
		if p.Spec.NodeName == "" {
			p.Spec.NodeName = "node-1"
			h.objs.Update(h.ctx, &p)
		}
	}
}

func (h *harness) step() {
	h.m.ReconcileAll(h.ctx)
	h.bind()
}

func (h *harness) get(name string) *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	if err := h.objs.Get(h.ctx, d); err != nil {
		h.t.Fatal(err)
	}
	return d
}

func images(pods []corev1.Pod) map[string]int {
	out := map[string]int{}
	for _, p := range pods {
		if p.DeletionTimestamp == nil {
			out[p.Spec.Containers[0].Image]++
		}
	}
	return out
}

func TestDeploymentCreatesAndScales(t *testing.T) {
	h := newHarness(t)
	h.deployment("web", 3, intstr.FromString("25%"), intstr.FromString("25%"))
	for range 3 {
		h.step()
	}
	if n := len(h.pods()); n != 3 {
		t.Fatalf("%d pods, want 3", n)
	}
	h.kubelet()
	h.step()
	h.step()
	d := h.get("web")
	if d.Status.AvailableReplicas != 3 || d.Status.UpdatedReplicas != 3 || d.Status.ObservedGeneration != d.Generation {
		t.Fatalf("status %+v", d.Status)
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason != "NewReplicaSetAvailable" {
			t.Fatalf("progressing %+v", c)
		}
	}
	d.Spec.Replicas = ptr(int32(1))
	h.objs.Update(h.ctx, d)
	h.step()
	h.step()
	h.kubelet()
	if n := len(h.pods()); n != 1 {
		t.Fatalf("%d pods after scale down, want 1", n)
	}
}

func TestRollingUpdateKeepsAvailability(t *testing.T) {
	h := newHarness(t)
	h.deployment("web", 4, intstr.FromInt32(1), intstr.FromInt32(1))
	for range 3 {
		h.step()
		h.kubelet()
	}
	d := h.get("web")
	d.Spec.Template.Spec.Containers[0].Image = "img:2"
	if err := h.objs.Update(h.ctx, d); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		h.step()
		pods := h.pods()
		live, ready := 0, 0
		for _, p := range pods {
			if p.DeletionTimestamp == nil {
				live++
				if p.Status.Phase == corev1.PodRunning {
					ready++
				}
			}
		}
		if live > 5 {
			t.Fatalf("step %d: %d pods exceed replicas+maxSurge", i, live)
		}
		if ready < 3 {
			t.Fatalf("step %d: %d ready pods, below replicas-maxUnavailable", i, ready)
		}
		h.kubelet()
		if im := images(h.pods()); im["img:2"] == 4 && im["img:1"] == 0 {
			break
		}
	}
	if im := images(h.pods()); im["img:2"] != 4 || im["img:1"] != 0 {
		t.Fatalf("rollout did not finish: %v", im)
	}
	var rss appsv1.ReplicaSetList
	h.objs.List(h.ctx, &rss, "default", nil)
	if len(rss.Items) != 2 {
		t.Fatalf("%d ReplicaSets, want old and new", len(rss.Items))
	}
	for _, rs := range rss.Items {
		if rev := rs.Annotations[RevisionAnnotation]; (rs.Spec.Template.Spec.Containers[0].Image == "img:2") != (rev == "2") {
			t.Fatalf("ReplicaSet %s has revision %s", rs.Name, rev)
		}
	}
}

func TestGarbageCollectionAndNamespaceDeletion(t *testing.T) {
	h := newHarness(t)
	d := h.deployment("web", 2, intstr.FromInt32(1), intstr.FromInt32(0))
	h.step()
	h.step()
	h.objs.Delete(h.ctx, d, nil)
	for range 4 {
		h.step()
		h.kubelet()
	}
	var rss appsv1.ReplicaSetList
	h.objs.List(h.ctx, &rss, "default", nil)
	if len(rss.Items) != 0 || len(h.pods()) != 0 {
		t.Fatalf("%d ReplicaSets and %d pods left after deleting their Deployment", len(rss.Items), len(h.pods()))
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}
	h.objs.Create(h.ctx, ns)
	h.deploymentIn("team", "api", 1, intstr.FromInt32(1), intstr.FromInt32(0))
	h.step()
	var teamPods corev1.PodList
	if h.objs.List(h.ctx, &teamPods, "team", nil); len(teamPods.Items) != 1 {
		t.Fatalf("%d pods in team, want 1", len(teamPods.Items))
	}
	h.objs.Delete(h.ctx, ns, nil)
	if err := h.objs.Get(h.ctx, ns); err != nil || ns.DeletionTimestamp == nil {
		t.Fatalf("namespace not marked for deletion: %v", err)
	}
	if err := h.objs.Create(h.ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: "team"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}); !apierrors.IsForbidden(err) {
		t.Fatalf("create in terminating namespace: %v, want Forbidden", err)
	}
	for range 3 {
		h.step()
		h.kubelet()
	}
	if err := h.objs.Get(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace still there: %v", err)
	}
	if h.objs.List(h.ctx, &teamPods, "team", nil); len(teamPods.Items) != 0 {
		t.Fatalf("%d pods left in the deleted namespace", len(teamPods.Items))
	}
}

// TestSurplusKeepsSpreadAndOldPods: two owners over-placed a 6-replica set
// as 4/3/1 (8 pods). Removing 2 takes the newest pod of the most crowded
// node, recounts, and takes the newest of the two nodes now holding 3,
// leaving 2/3/1 with the oldest pods kept.
func TestSurplusKeepsSpreadAndOldPods(t *testing.T) {
	base := time.Unix(1_800_000_000, 0)
	var pods []*corev1.Pod
	add := func(name, node string, age int, ready bool) {
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		pods = append(pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(base.Add(-time.Duration(age) * time.Minute))},
			Spec:       corev1.PodSpec{NodeName: node},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
		})
	}
	add("a1", "a", 10, true)
	add("a2", "a", 9, true)
	add("a3", "a", 2, true)
	add("a4", "a", 1, true)
	add("b1", "b", 10, true)
	add("b2", "b", 8, true)
	add("b3", "b", 3, true)
	add("c1", "c", 10, true)
	victims, kept := surplus(pods, 2)
	var got []string
	for _, v := range victims {
		got = append(got, v.Name)
	}
	// a4 first (the node with most, newest); then a and b both hold 3: the
	// newer of their pods, a3, goes.
	if strings.Join(got, ",") != "a4,a3" {
		t.Fatalf("victims %v, want a4 then a3", got)
	}
	if len(kept) != 6 {
		t.Fatalf("kept %d pods, want 6", len(kept))
	}
	// A pod that is not ready goes before any ready one, however crowded.
	add("c2", "c", 0, false)
	if victims, _ := surplus(pods, 1); victims[0].Name != "c2" {
		t.Fatalf("victim %s, want the not-ready c2", victims[0].Name)
	}
}

// TestOneWorkloadOneOwner: a node that owns a Deployment's key reconciles
// the Deployment, its ReplicaSet and its pods; a node that does not owns
// none of them, so no two nodes split one workload.
func TestOneWorkloadOneOwner(t *testing.T) {
	h := newHarness(t)
	d := h.deployment("web", 2, intstr.FromInt32(1), intstr.FromInt32(0))
	other, err := New(Config{Client: h.objs, Owns: func(uid types.UID) bool { return uid != d.UID }})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		other.ReconcileAll(h.ctx)
	}
	if n := len(h.pods()); n != 0 {
		t.Fatalf("a node not owning the Deployment created %d pods", n)
	}
	owning, err := New(Config{Client: h.objs, Owns: func(uid types.UID) bool { return uid == d.UID }})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		owning.ReconcileAll(h.ctx)
	}
	if n := len(h.pods()); n != 2 {
		t.Fatalf("the owner of the Deployment made %d pods, want 2 (its ReplicaSet is keyed by the Deployment too)", n)
	}
}

// TestEveryNamespaceHasADefaultServiceAccount: created with the namespace,
// back after a delete, and not re-created in a namespace being deleted.
func TestEveryNamespaceHasADefaultServiceAccount(t *testing.T) {
	h := newHarness(t)
	h.objs.Create(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}})
	h.step()
	sa := func(ns string) error {
		return h.objs.Get(h.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}})
	}
	for _, ns := range []string{"default", "team"} {
		if err := sa(ns); err != nil {
			t.Fatalf("namespace %s: %v", ns, err)
		}
	}
	h.objs.Delete(h.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "team"}}, nil)
	h.step()
	if err := sa("team"); err != nil {
		t.Fatalf("deleted default ServiceAccount not re-created: %v", err)
	}
	h.objs.Delete(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, nil)
	for range 3 {
		h.step()
	}
	if err := sa("team"); !apierrors.IsNotFound(err) {
		t.Fatalf("default ServiceAccount of a deleted namespace: %v", err)
	}
}

// TestDeletionPropagation: an Orphan delete of a Deployment leaves its
// ReplicaSet and pods running without it; a Foreground delete keeps the
// Deployment until its ReplicaSets and their pods are gone.
func TestDeletionPropagation(t *testing.T) {
	h := newHarness(t)
	d := h.deployment("web", 2, intstr.FromInt32(1), intstr.FromInt32(0))
	h.settle()
	if err := h.objs.DeleteWith(h.ctx, d, objects.DeleteOptions{Propagation: metav1.DeletePropagationOrphan}); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if err := h.objs.Get(h.ctx, d); !apierrors.IsNotFound(err) {
		t.Fatalf("orphaning Deployment still there: %v", err)
	}
	var rss appsv1.ReplicaSetList
	h.objs.List(h.ctx, &rss, "default", nil)
	if len(rss.Items) != 1 || len(rss.Items[0].OwnerReferences) != 0 || len(h.pods()) != 2 {
		t.Fatalf("after an orphan delete: %d ReplicaSets (%+v), %d pods; want the ReplicaSet, unowned, and its 2 pods", len(rss.Items), rss.Items, len(h.pods()))
	}
	h.objs.Delete(h.ctx, &rss.Items[0], nil)
	h.settle()

	d = h.deployment("api", 1, intstr.FromInt32(1), intstr.FromInt32(0))
	h.settle()
	if err := h.objs.DeleteWith(h.ctx, d, objects.DeleteOptions{Propagation: metav1.DeletePropagationForeground}); err != nil {
		t.Fatal(err)
	}
	h.m.ReconcileAll(h.ctx) // the ReplicaSet, in the foreground
	h.m.ReconcileAll(h.ctx) // its pod
	if err := h.objs.Get(h.ctx, d); err != nil || d.DeletionTimestamp == nil {
		t.Fatalf("foreground-deleted Deployment: %v; want it kept while its pods go", err)
	}
	if pods := h.pods(); len(pods) != 1 || pods[0].DeletionTimestamp == nil {
		t.Fatalf("pods %+v, want the one being deleted", pods)
	}
	h.settle()
	h.settle()
	if err := h.objs.Get(h.ctx, d); !apierrors.IsNotFound(err) {
		t.Fatalf("Deployment still there after its pods went: %v", err)
	}
	if h.objs.List(h.ctx, &rss, "default", nil); len(rss.Items) != 0 || len(h.pods()) != 0 {
		t.Fatalf("%d ReplicaSets and %d pods left", len(rss.Items), len(h.pods()))
	}
}

// TestGarbageCollectionByAnyOwnerReference: an object goes once all its
// owners are gone, whatever their kind, but an owner this replica has
// never seen (not replicated yet) or of a kind not served keeps it.
func TestGarbageCollectionByAnyOwnerReference(t *testing.T) {
	h := newHarness(t)
	cm := func(name string, refs ...metav1.OwnerReference) *corev1.ConfigMap {
		c := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", OwnerReferences: refs}}
		if err := h.objs.Create(h.ctx, c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	ref := func(apiVersion, kind, name string, uid types.UID) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid}
	}
	parent := cm("parent")
	other := cm("other")
	cm("child", ref("v1", "ConfigMap", "parent", parent.UID))
	cm("shared", ref("v1", "ConfigMap", "parent", parent.UID), ref("v1", "ConfigMap", "other", other.UID))
	cm("unseen", ref("v1", "ConfigMap", "ghost", "uid-never-seen"))
	cm("foreign", ref("example.com/v1", "Thing", "t", "uid-of-a-thing"))
	exists := func(name string) bool {
		err := h.objs.Get(h.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}})
		return err == nil
	}
	h.m.ReconcileAll(h.ctx)
	for _, name := range []string{"child", "shared", "unseen", "foreign"} {
		if !exists(name) {
			t.Fatalf("%s was collected while its owners were there or not known gone", name)
		}
	}
	h.objs.Delete(h.ctx, parent, nil)
	h.m.ReconcileAll(h.ctx)
	if exists("child") {
		t.Fatal("child outlived its only owner")
	}
	for _, name := range []string{"shared", "unseen", "foreign"} {
		if !exists(name) {
			t.Fatalf("%s was collected, but it has an owner left or one not known gone", name)
		}
	}
}
