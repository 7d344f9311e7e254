package controller

import (
	"encoding/json"
	"slices"
	"sort"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

func (h *harness) node(name string, mod func(*corev1.Node)) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
	if mod != nil {
		mod(n)
	}
	if err := h.objs.Create(h.ctx, n); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) editNode(name string, mod func(*corev1.Node)) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := h.objs.Get(h.ctx, n); err != nil {
		h.t.Fatal(err)
	}
	mod(n)
	if err := h.objs.Update(h.ctx, n); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) daemonSet(name string, mod func(*appsv1.DaemonSet)) *appsv1.DaemonSet {
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img:1"}}},
			},
		},
	}
	if mod != nil {
		mod(ds)
	}
	if err := h.objs.Create(h.ctx, ds); err != nil {
		h.t.Fatal(err)
	}
	return ds
}

func (h *harness) editDaemonSet(name string, mod func(*appsv1.DaemonSet)) {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	if err := h.objs.Get(h.ctx, ds); err != nil {
		h.t.Fatal(err)
	}
	mod(ds)
	if err := h.objs.Update(h.ctx, ds); err != nil {
		h.t.Fatal(err)
	}
}

// daemonPods maps node to the images of the live pods there.
func (h *harness) daemonPods() map[string][]string {
	out := map[string][]string{}
	for _, p := range h.pods() {
		if p.DeletionTimestamp == nil {
			out[p.Spec.NodeName] = append(out[p.Spec.NodeName], p.Spec.Containers[0].Image)
		}
	}
	for _, imgs := range out {
		sort.Strings(imgs)
	}
	return out
}

func (h *harness) revisions() []appsv1.ControllerRevision {
	var list appsv1.ControllerRevisionList
	if err := h.objs.List(h.ctx, &list, "default", nil); err != nil {
		h.t.Fatal(err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Revision < list.Items[j].Revision })
	return list.Items
}

func nodes(m map[string][]string) []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func TestDaemonSetRunsOnEveryNodeItShould(t *testing.T) {
	h := newHarness(t)
	h.node("a", nil)
	h.node("b", func(n *corev1.Node) { n.Spec.Unschedulable = true }) // cordoned: daemons still run
	h.node("c", func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}}
	})
	h.node("d", func(n *corev1.Node) { n.Labels["disk"] = "hdd" })
	h.daemonSet("agent", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpDoesNotExist}}}}}}}
	})
	h.m.ReconcileAll(h.ctx)
	if got := nodes(h.daemonPods()); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("daemon pods on %v, want [a b] (c is tainted, d does not match the affinity)", got)
	}
	p := h.pods()[0]
	if p.Labels[RevisionHashLabel] == "" || len(p.Spec.Tolerations) != len(daemonTolerations) ||
		p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchFields[0].Values[0] != p.Spec.NodeName {
		t.Fatalf("daemon pod lacks the revision label, the daemon tolerations or the node affinity: %+v", p.Spec)
	}
	h.kubelet()
	h.m.ReconcileAll(h.ctx)
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "default"}}
	h.objs.Get(h.ctx, ds)
	if st := ds.Status; st.DesiredNumberScheduled != 2 || st.CurrentNumberScheduled != 2 || st.NumberReady != 2 || st.UpdatedNumberScheduled != 2 || st.NumberAvailable != 2 {
		t.Fatalf("status %+v, want 2 desired, current, ready, updated and available", st)
	}

	// A node that joins gets its pod; a deleted node's pod goes; a NoExecute
	// taint the daemon does not tolerate removes it, a NoSchedule one does not.
	h.node("e", nil)
	h.objs.Delete(h.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, nil)
	h.editNode("b", func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "quiet", Effect: corev1.TaintEffectNoSchedule}}
	})
	h.m.ReconcileAll(h.ctx)
	h.kubelet()
	if got := nodes(h.daemonPods()); !slices.Equal(got, []string{"b", "e"}) {
		t.Fatalf("daemon pods on %v, want [b e]", got)
	}
	h.editNode("b", func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "evict", Effect: corev1.TaintEffectNoExecute}}
	})
	h.m.ReconcileAll(h.ctx)
	h.kubelet()
	if got := nodes(h.daemonPods()); !slices.Equal(got, []string{"e"}) {
		t.Fatalf("daemon pods on %v, want [e]", got)
	}
}

func TestDaemonSetRollsOutAndBack(t *testing.T) {
	h := newHarness(t)
	for _, n := range []string{"a", "b", "c", "d"} {
		h.node(n, nil)
	}
	h.daemonSet("agent", nil)
	h.m.ReconcileAll(h.ctx)
	h.kubelet()
	h.editDaemonSet("agent", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = "img:2" })
	// maxUnavailable 1: one node at a time is without a ready daemon.
	for round := 0; ; round++ {
		h.m.ReconcileAll(h.ctx)
		pods := h.daemonPods()
		if len(pods) < 3 {
			t.Fatalf("round %d: daemon pods %v, want at most one node without one", round, pods)
		}
		h.kubelet()
		h.m.ReconcileAll(h.ctx)
		if done := h.daemonPods(); len(done) == 4 && slices.Equal(done["a"], []string{"img:2"}) && slices.Equal(done["b"], []string{"img:2"}) &&
			slices.Equal(done["c"], []string{"img:2"}) && slices.Equal(done["d"], []string{"img:2"}) {
			break
		}
		h.kubelet()
		if round > 10 {
			t.Fatalf("not rolled out after %d rounds: %v", round, h.daemonPods())
		}
	}
	revs := h.revisions()
	if len(revs) != 2 || revs[0].Revision != 1 || revs[1].Revision != 2 {
		t.Fatalf("revisions %+v, want 1 and 2", revs)
	}
	// kubectl rollout undo sends revision 1's data as a strategic merge
	// patch; it must restore the template and renumber revision 1 as 3.
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "default"}}
	h.objs.Get(h.ctx, ds)
	cur, _ := json.Marshal(ds)
	patched, err := strategicpatch.StrategicMergePatch(cur, revs[0].Data.Raw, &appsv1.DaemonSet{})
	if err != nil {
		t.Fatal(err)
	}
	var back appsv1.DaemonSet
	if err := json.Unmarshal(patched, &back); err != nil {
		t.Fatal(err)
	}
	if err := h.objs.Update(h.ctx, &back); err != nil {
		t.Fatal(err)
	}
	h.m.ReconcileAll(h.ctx)
	if after := h.revisions(); len(after) != 2 || after[1].Name != revs[0].Name || after[1].Revision != 3 || after[0].Revision != 2 {
		t.Fatalf("after the rollback revisions %+v, want %s renumbered 3", after, revs[0].Name)
	}
	for range 10 {
		h.kubelet()
		h.m.ReconcileAll(h.ctx)
	}
	for n, imgs := range h.daemonPods() {
		if !slices.Equal(imgs, []string{"img:1"}) {
			t.Fatalf("node %s runs %v after the rollback, want [img:1]", n, imgs)
		}
	}
}

func TestDaemonSetSurgeKeepsTheOldPodUntilTheNewIsReady(t *testing.T) {
	h := newHarness(t)
	h.node("a", nil)
	h.node("b", nil)
	h.daemonSet("agent", func(ds *appsv1.DaemonSet) {
		ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxSurge: new(intstr.FromInt32(1)), MaxUnavailable: new(intstr.FromInt32(0))}
	})
	h.m.ReconcileAll(h.ctx)
	h.kubelet()
	h.editDaemonSet("agent", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = "img:2" })
	h.m.ReconcileAll(h.ctx)
	got := h.daemonPods()
	if !slices.Equal(got["a"], []string{"img:1", "img:2"}) || !slices.Equal(got["b"], []string{"img:1"}) {
		t.Fatalf("after the update %v, want one surged pod beside a's old one, b untouched", got)
	}
	h.m.ReconcileAll(h.ctx) // the new pod is not ready: nothing more
	if again := h.daemonPods(); len(again["a"]) != 2 || len(again["b"]) != 1 {
		t.Fatalf("before the surged pod is ready %v, want no change", again)
	}
	h.kubelet()
	h.m.ReconcileAll(h.ctx)
	got = h.daemonPods()
	if !slices.Equal(got["a"], []string{"img:2"}) || !slices.Equal(got["b"], []string{"img:1", "img:2"}) {
		t.Fatalf("once the surged pod is ready %v, want a updated and b surging", got)
	}
}
