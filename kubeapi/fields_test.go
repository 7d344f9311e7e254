package kubeapi

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/workloadplane/objects"
	"github.com/mycelfabric/mycel/workloadplane/store"
)

// replicas are replicas of one fabric's objects that merge per part.
type replicas struct {
	st   []*store.Store
	objs []*objects.Objects
}

// replicaPair is two replicas.
type replicaPair = replicas

func newReplicaPair(t *testing.T) *replicaPair { return newReplicas(t, 2) }

func newReplicas(t *testing.T, n int) *replicas {
	t.Helper()
	p := &replicas{}
	for i := range n {
		st, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{Node: string(rune('a' + i))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		p.st, p.objs = append(p.st, st), append(p.objs, objects.New(st, objects.Config{}))
	}
	authority, err := ca.Init(filepath.Join(t.TempDir(), "ca"), "test.example")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(Config{Objects: p.objs[0], Bundle: authority.Bundle(), Metrics: fixedMetrics{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range p.st {
		st.SetFields(srv.Fields())
	}
	return p
}

// exchange merges what each of the first two replicas holds into the
// other, both from the state before either merged: the two orders of one
// merge.
func (p *replicas) exchange(t *testing.T) {
	t.Helper()
	a, b := p.all(t, 0), p.all(t, 1)
	if _, err := p.st[0].MergeBatch(b); err != nil {
		t.Fatal(err)
	}
	if _, err := p.st[1].MergeBatch(a); err != nil {
		t.Fatal(err)
	}
}

// all is every record replica i holds, tombstones included, as
// anti-entropy sends them.
func (p *replicas) all(t *testing.T, i int) []store.Record {
	t.Helper()
	buckets := make([]int, store.Buckets)
	for b := range buckets {
		buckets[b] = b
	}
	var keys []string
	for _, e := range p.st[i].Entries(buckets) {
		keys = append(keys, e.Key)
	}
	recs, err := p.st[i].Records(keys)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// sync merges everything replica from holds into replica to.
func (p *replicas) sync(t *testing.T, from, to int) {
	t.Helper()
	if _, err := p.st[to].MergeBatch(p.all(t, from)); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentEditsMergePerField: an object created on one replica and
// replicated, then edited differently on each replica at once, merges to
// the same object on both, which keeps both edits (or, for one field, the
// later one).
func TestConcurrentEditsMergePerField(t *testing.T) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	for _, tc := range []struct {
		name   string
		obj    func() objects.Object
		status bool
		a, b   func(objects.Object)
		want   func(t *testing.T, got objects.Object)
	}{{
		name: "labels per key",
		obj: func() objects.Object {
			return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "default", Labels: map[string]string{"old": "1"}}}
		},
		a: func(o objects.Object) { o.GetLabels()["x"] = "a" },
		b: func(o objects.Object) { l := o.GetLabels(); l["y"] = "b"; delete(l, "old") },
		want: func(t *testing.T, o objects.Object) {
			if want := map[string]string{"x": "a", "y": "b"}; !reflect.DeepEqual(o.GetLabels(), want) {
				t.Errorf("labels %v, want %v", o.GetLabels(), want)
			}
		},
	}, {
		name: "annotations per key, same key last writer",
		obj: func() objects.Object {
			return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "default", Annotations: map[string]string{"k": "0"}}}
		},
		a: func(o objects.Object) { o.GetAnnotations()["k"] = "a"; o.GetAnnotations()["a"] = "1" },
		b: func(o objects.Object) { o.GetAnnotations()["k"] = "b" }, // written after a's
		want: func(t *testing.T, o objects.Object) {
			if want := map[string]string{"k": "b", "a": "1"}; !reflect.DeepEqual(o.GetAnnotations(), want) {
				t.Errorf("annotations %v, want %v", o.GetAnnotations(), want)
			}
		},
	}, {
		name: "finalizers per element",
		obj: func() objects.Object {
			return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "default", Finalizers: []string{"example.com/f0"}}}
		},
		a: func(o objects.Object) { o.SetFinalizers(append(o.GetFinalizers(), "example.com/f1")) },
		b: func(o objects.Object) { o.SetFinalizers(nil) },
		want: func(t *testing.T, o objects.Object) {
			if want := []string{"example.com/f1"}; !reflect.DeepEqual(o.GetFinalizers(), want) {
				t.Errorf("finalizers %v, want %v", o.GetFinalizers(), want)
			}
		},
	}, {
		name: "containers by name, other fields by path",
		obj: func() objects.Object {
			d := webDeployment("web", 1)
			d.Namespace = "default"
			return d
		},
		a: func(o objects.Object) {
			d := o.(*appsv1.Deployment)
			d.Spec.Template.Spec.Containers[0].Image = "web:2"
			d.Spec.Replicas = new(int32(3))
		},
		b: func(o objects.Object) {
			d := o.(*appsv1.Deployment)
			d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: "sidecar", Image: "side:1"})
			d.Spec.MinReadySeconds = 5
		},
		want: func(t *testing.T, o objects.Object) {
			d := o.(*appsv1.Deployment)
			c := d.Spec.Template.Spec.Containers
			if len(c) != 2 || c[0].Image != "web:2" || c[1].Name != "sidecar" || *d.Spec.Replicas != 3 || d.Spec.MinReadySeconds != 5 {
				t.Errorf("containers %+v, replicas %d, minReadySeconds %d; want web:2 and sidecar, 3, 5", c, *d.Spec.Replicas, d.Spec.MinReadySeconds)
			}
		},
	}, {
		name: "conditions by type",
		obj: func() objects.Object {
			return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
		},
		status: true,
		a: func(o objects.Object) {
			p := o.(*corev1.Pod)
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue})
		},
		b: func(o objects.Object) {
			p := o.(*corev1.Pod)
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue})
		},
		want: func(t *testing.T, o objects.Object) {
			types := map[corev1.PodConditionType]bool{}
			for _, c := range o.(*corev1.Pod).Status.Conditions {
				types[c.Type] = true
			}
			if !types[corev1.PodReady] || !types[corev1.DisruptionTarget] {
				t.Errorf("conditions %+v, want Ready and DisruptionTarget", o.(*corev1.Pod).Status.Conditions)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := newReplicaPair(t)
			if err := p.objs[0].Create(ctx, ns.DeepCopy()); err != nil {
				t.Fatal(err)
			}
			created := tc.obj()
			if err := p.objs[0].Create(ctx, created); err != nil {
				t.Fatal(err)
			}
			p.exchange(t)
			for i, edit := range []func(objects.Object){tc.a, tc.b} {
				o := tc.obj()
				o.SetName(created.GetName())
				if err := p.objs[i].Get(ctx, o); err != nil {
					t.Fatal(err)
				}
				edit(o)
				update := p.objs[i].Update
				if tc.status {
					update = p.objs[i].UpdateStatus
				}
				if err := update(ctx, o); err != nil {
					t.Fatalf("edit on replica %d: %v", i, err)
				}
			}
			p.exchange(t)
			var got [2]objects.Object
			for i := range got {
				got[i] = tc.obj()
				got[i].SetName(created.GetName())
				if err := p.objs[i].Get(ctx, got[i]); err != nil {
					t.Fatal(err)
				}
				got[i].SetResourceVersion("")
				got[i].SetManagedFields(nil)
			}
			if !reflect.DeepEqual(got[0], got[1]) {
				t.Fatalf("replicas differ after merging in both orders:\n%+v\n%+v", got[0], got[1])
			}
			tc.want(t, got[0])
		})
	}
}

// TestResourceVersionsAcrossNodes: a resourceVersion read on one node is a
// precondition on the other (it names the object's version, not a place in
// one node's sequence), a stale one conflicts there, one whose version has
// not arrived yet waits for it, and a watch from the other node's
// resourceVersion answers 410 Gone instead of skipping events.
func TestResourceVersionsAcrossNodes(t *testing.T) {
	ctx := context.Background()
	p := newReplicaPair(t)
	a, b := p.objs[0], p.objs[1]
	for _, o := range []*objects.Objects{a, b} {
		if err := o.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}); err != nil {
			t.Fatal(err)
		}
	}
	// b's sequence of changes runs ahead of a's.
	if err := b.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "default"}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "default"}}); err != nil {
		t.Fatal(err)
	}
	p.exchange(t)
	get := func(o *objects.Objects) *corev1.ConfigMap {
		t.Helper()
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "default"}}
		if err := o.Get(ctx, cm); err != nil {
			t.Fatal(err)
		}
		return cm
	}
	update := func(o *objects.Objects, cm *corev1.ConfigMap, k, v string) error {
		cm = cm.DeepCopy()
		cm.Data = map[string]string{k: v}
		return o.Update(ctx, cm)
	}
	readOnA := get(a)
	if readOnA.ResourceVersion == get(b).ResourceVersion {
		t.Fatalf("both nodes gave resourceVersion %s: want each node's own sequence in it", readOnA.ResourceVersion)
	}
	if err := update(b, readOnA, "k", "read on a, written through b"); err != nil {
		t.Fatalf("update through b with a's resourceVersion: %v", err)
	}
	p.exchange(t)
	if err := update(a, readOnA, "k", "stale"); !apierrors.IsConflict(err) {
		t.Fatalf("update through a with its stale resourceVersion: %v, want 409 Conflict", err)
	}
	if got := get(a).Data["k"]; got != "read on a, written through b" {
		t.Fatalf("a holds %q", got)
	}

	// A version written on a that b has not received yet: b waits for it.
	if err := update(a, get(a), "k", "newer on a"); err != nil {
		t.Fatal(err)
	}
	newer := get(a)
	done := make(chan error, 1)
	go func() { done <- update(b, newer, "k", "after the newer one") }()
	p.sync(t, 0, 1)
	if err := <-done; err != nil {
		t.Fatalf("update through b with a version that reached b later: %v", err)
	}

	cms := func(o *objects.Objects) objects.Collection {
		return o.In(o.Lookup(schema.GroupVersion{Version: "v1"}, "configmaps"))
	}
	l, err := cms(a).List("default", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cms(b).Watch("default", l.ResourceVersion); !apierrors.IsResourceExpired(err) {
		t.Fatalf("watch on b from a's list resourceVersion: %v, want 410 Expired", err)
	}
	lb, err := cms(b).List("default", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := cms(b).Watch("default", lb.ResourceVersion)
	if err != nil {
		t.Fatalf("watch on b from its own list: %v", err)
	}
	w.Close()
}

// TestPartitionedWritesMergeOnHeal: four replicas split 2|2. On each side,
// every replica adds its own label to one ConfigMap and both sides set the
// same data key; one side deletes a second ConfigMap while the other keeps
// writing it. Each side replicates within itself. After the heal, in any
// order of merges, every replica holds the same records: all four labels,
// the later write of the shared key, and the delete.
func TestPartitionedWritesMergeOnHeal(t *testing.T) {
	ctx := context.Background()
	p := newReplicas(t, 4)
	r := p.objs
	for _, o := range r {
		if err := o.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"shared", "doomed"} {
		if err := r[0].Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < 4; i++ {
		p.sync(t, 0, i)
	}
	side := func(i int) int { return i / 2 * 2 } // {0,1} and {2,3}
	// within replicates replica i's writes to its side's other replica.
	within := func(i int) { p.sync(t, i, side(i)+(1-i%2)) }
	edit := func(i int, name string, f func(*corev1.ConfigMap)) {
		t.Helper()
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
		if err := r[i].Get(ctx, cm); err != nil {
			t.Fatal(err)
		}
		f(cm)
		if err := r[i].Update(ctx, cm); err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		within(i)
	}
	for i := range 4 {
		edit(i, "shared", func(cm *corev1.ConfigMap) {
			if cm.Labels == nil {
				cm.Labels = map[string]string{}
			}
			cm.Labels[fmt.Sprintf("from-%d", i)] = "yes"
		})
	}
	edit(3, "shared", func(cm *corev1.ConfigMap) { cm.Data = map[string]string{"k": "from 3"} })
	edit(1, "shared", func(cm *corev1.ConfigMap) { cm.Data = map[string]string{"k": "from 1, later"} })
	if err := r[0].Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "doomed", Namespace: "default"}}, nil); err != nil {
		t.Fatal(err)
	}
	within(0)
	edit(2, "doomed", func(cm *corev1.ConfigMap) { cm.Data = map[string]string{"after": "the delete"} })

	// The heal: anti-entropy between members in no particular order.
	for _, m := range [][2]int{{3, 0}, {1, 2}, {0, 3}, {2, 1}, {0, 2}, {3, 1}} {
		p.sync(t, m[0], m[1])
	}
	for i := range 4 {
		if p.st[i].Digest() != p.st[0].Digest() {
			t.Errorf("replica %d's digest differs from replica 0's", i)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "shared", Namespace: "default"}}
		if err := r[i].Get(ctx, cm); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"from-0": "yes", "from-1": "yes", "from-2": "yes", "from-3": "yes"}
		if !reflect.DeepEqual(cm.Labels, want) || cm.Data["k"] != "from 1, later" {
			t.Errorf("replica %d: labels %v, data %v; want all four labels and the later k", i, cm.Labels, cm.Data)
		}
		err := r[i].Get(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "doomed", Namespace: "default"}})
		if !apierrors.IsNotFound(err) {
			t.Errorf("replica %d: the deleted ConfigMap: %v, want NotFound", i, err)
		}
	}
}
