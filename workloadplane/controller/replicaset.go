package controller

import (
	"context"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

func (m *Manager) reconcileReplicaSets(ctx context.Context) error {
	var rss appsv1.ReplicaSetList
	if err := m.c.List(ctx, &rss, "", nil); err != nil {
		return err
	}
	var pods corev1.PodList
	if err := m.c.List(ctx, &pods, "", nil); err != nil {
		return err
	}
	owned := map[types.UID][]*corev1.Pod{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if uid := controllerOf(p); uid != "" {
			owned[uid] = append(owned[uid], p)
		}
	}
	for i := range rss.Items {
		rs := &rss.Items[i]
		if rs.DeletionTimestamp != nil || !m.cfg.Owns(rs.UID) {
			continue
		}
		if err := m.syncReplicaSet(ctx, rs, owned[rs.UID]); err != nil {
			m.log.Warn("sync replicaset", "rs", rs.Namespace+"/"+rs.Name, "err", err)
		}
	}
	return nil
}

// deletionOrder sorts pods so the ones to delete first come first:
// unscheduled, then pending, then not ready, then the newest.
func deletionOrder(pods []*corev1.Pod) {
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
	sort.SliceStable(pods, func(i, j int) bool {
		if ri, rj := rank(pods[i]), rank(pods[j]); ri != rj {
			return ri < rj
		}
		if !pods[i].CreationTimestamp.Equal(&pods[j].CreationTimestamp) {
			return pods[j].CreationTimestamp.Before(&pods[i].CreationTimestamp)
		}
		return pods[i].Name > pods[j].Name
	})
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
			pod := podFromTemplate(rs)
			if err := m.c.Create(ctx, pod); err != nil {
				m.c.Record(ctx, rs, rsComponent, corev1.EventTypeWarning, "FailedCreate", fmt.Sprintf("Error creating: %v", err))
				return err
			}
			m.c.Record(ctx, rs, rsComponent, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: "+pod.Name)
			live = append(live, pod)
		}
	case diff < 0:
		deletionOrder(live)
		for _, p := range live[:-diff] {
			if err := m.c.Delete(ctx, p, nil); err != nil {
				return err
			}
			m.c.Record(ctx, rs, rsComponent, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: "+p.Name)
		}
		live = live[-diff:]
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

func podFromTemplate(rs *appsv1.ReplicaSet) *corev1.Pod {
	t := rs.Spec.Template.DeepCopy()
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    rs.Name + "-",
			Namespace:       rs.Namespace,
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))},
		},
		Spec: t.Spec,
	}
}
