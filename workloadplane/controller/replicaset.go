package controller

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

const rsComponent = "replicaset-controller"

// controllerOf returns the UID of obj's controlling owner, if any.
func controllerOf(obj metav1.Object) types.UID {
	if ref := metav1.GetControllerOf(obj); ref != nil {
		return ref.UID
	}
	return ""
}

// active reports whether a pod counts towards its ReplicaSet's replicas.
func active(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podsByController groups every pod by the UID of its controller.
func (m *Manager) podsByController(ctx context.Context) (map[types.UID][]*corev1.Pod, error) {
	var pods corev1.PodList
	if err := m.c.List(ctx, &pods, "", nil); err != nil {
		return nil, err
	}
	owned := map[types.UID][]*corev1.Pod{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if uid := controllerOf(p); uid != "" {
			owned[uid] = append(owned[uid], p)
		}
	}
	return owned, nil
}

func (m *Manager) reconcileReplicaSets(ctx context.Context) error {
	var rss appsv1.ReplicaSetList
	if err := m.c.List(ctx, &rss, "", nil); err != nil {
		return err
	}
	owned, err := m.podsByController(ctx)
	if err != nil {
		return err
	}
	for i := range rss.Items {
		rs := &rss.Items[i]
		if rs.DeletionTimestamp != nil || !m.cfg.Owns(m.chain.WorkloadKey(rs)) {
			continue
		}
		if err := m.syncReplicaSet(ctx, rs, owned[rs.UID]); err != nil {
			m.log.Warn("sync replicaset", "rs", rs.Namespace+"/"+rs.Name, "err", err)
		}
	}
	return nil
}

// surplus picks n pods to delete, one at a time, as Kubernetes' ReplicaSet
// controller ranks them: unscheduled, then pending, then not ready, then
// those on the node running most of the set (recounted after each pick, so
// removing what concurrent owners over-placed restores the spread), then
// the newest; the name breaks ties, so every owner picks the same pods. It
// returns the victims and the pods kept.
func surplus(pods []*corev1.Pod, n int) (victims, kept []*corev1.Pod) {
	rank := func(p *corev1.Pod) int {
		switch {
		case p.Spec.NodeName == "":
			return 0
		case p.Status.Phase == corev1.PodPending:
			return 1
		case !podReady(p):
			return 2
		}
		return 3
	}
	kept = append([]*corev1.Pod(nil), pods...)
	onNode := map[string]int{}
	for _, p := range kept {
		onNode[p.Spec.NodeName]++
	}
	first := func(a, b *corev1.Pod) bool {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		if ca, cb := onNode[a.Spec.NodeName], onNode[b.Spec.NodeName]; ca != cb {
			return ca > cb
		}
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return b.CreationTimestamp.Before(&a.CreationTimestamp)
		}
		return a.Name > b.Name
	}
	for range min(n, len(kept)) {
		best := 0
		for i := range kept {
			if first(kept[i], kept[best]) {
				best = i
			}
		}
		v := kept[best]
		victims = append(victims, v)
		onNode[v.Spec.NodeName]--
		kept = append(kept[:best], kept[best+1:]...)
	}
	return victims, kept
}

func (m *Manager) syncReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet, pods []*corev1.Pod) error {
	var live []*corev1.Pod
	for _, p := range pods {
		if active(p) {
			live = append(live, p)
		}
	}
	want := int(*rs.Spec.Replicas)
	switch diff := want - len(live); {
	case diff > 0:
		for range diff {
			pod := podFromTemplate(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"), &rs.Spec.Template)
			if err := m.c.Create(ctx, pod); err != nil {
				m.c.Record(ctx, rs, rsComponent, corev1.EventTypeWarning, "FailedCreate", fmt.Sprintf("Error creating: %v", err))
				return err
			}
			m.c.Record(ctx, rs, rsComponent, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: "+pod.Name)
			live = append(live, pod)
		}
	case diff < 0:
		victims, kept := surplus(live, -diff)
		for _, p := range victims {
			if err := m.c.Delete(ctx, p, nil); err != nil {
				return err
			}
			m.c.Record(ctx, rs, rsComponent, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: "+p.Name)
		}
		live = kept
	}
	st := appsv1.ReplicaSetStatus{Replicas: int32(len(live)), ObservedGeneration: rs.Generation, Conditions: rs.Status.Conditions}
	for _, p := range live {
		st.FullyLabeledReplicas++
		if podReady(p) {
			st.ReadyReplicas++
			st.AvailableReplicas++
		}
	}
	if equality.Semantic.DeepEqual(st, rs.Status) {
		return nil
	}
	rs.Status = st
	return m.c.UpdateStatus(ctx, rs)
}

// podFromTemplate is a new pod of the workload owner (of kind gvk) from a
// copy of its template, named after it.
func podFromTemplate(owner metav1.Object, gvk schema.GroupVersionKind, tmpl *corev1.PodTemplateSpec) *corev1.Pod {
	t := tmpl.DeepCopy()
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    owner.GetName() + "-",
			Namespace:       owner.GetNamespace(),
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(owner, gvk)},
		},
		Spec: t.Spec,
	}
}
