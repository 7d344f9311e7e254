package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	schedhelper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"

	"github.com/mycelfabric/mycel/workloadplane/objects"
	"github.com/mycelfabric/mycel/workloadplane/sched"
)

const (
	dsComponent = "daemonset-controller"
	// RevisionHashLabel names the ControllerRevision a DaemonSet's pod was
	// made from, as in Kubernetes.
	RevisionHashLabel = appsv1.ControllerRevisionHashLabelKey
)

// daemonTolerations are the tolerations Kubernetes gives every DaemonSet
// pod: it stays on a node that is unreachable, not ready, under pressure
// or cordoned.
var daemonTolerations = []corev1.Toleration{
	{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
}

func (m *Manager) reconcileDaemonSets(ctx context.Context) error {
	var dss appsv1.DaemonSetList
	if err := m.c.List(ctx, &dss, "", nil); err != nil {
		return err
	}
	if len(dss.Items) == 0 {
		return nil
	}
	var nodes corev1.NodeList
	if err := m.c.List(ctx, &nodes, "", nil); err != nil {
		return err
	}
	var revs appsv1.ControllerRevisionList
	if err := m.c.List(ctx, &revs, "", nil); err != nil {
		return err
	}
	pods, err := m.podsByController(ctx)
	if err != nil {
		return err
	}
	history := map[types.UID][]*appsv1.ControllerRevision{}
	for i := range revs.Items {
		if uid := controllerOf(&revs.Items[i]); uid != "" {
			history[uid] = append(history[uid], &revs.Items[i])
		}
	}
	for i := range dss.Items {
		ds := &dss.Items[i]
		if ds.DeletionTimestamp != nil || !m.cfg.Owns(m.chain.WorkloadKey(ds)) {
			continue
		}
		if err := m.syncDaemonSet(ctx, ds, nodes.Items, pods[ds.UID], history[ds.UID]); err != nil {
			m.log.Warn("sync daemonset", "daemonset", ds.Namespace+"/"+ds.Name, "err", err)
		}
	}
	return nil
}

// daemonNode is what the controller knows of one node for a DaemonSet.
type daemonNode struct {
	// should: a new pod may go there; keep: a pod there may stay (it
	// tolerates the node's NoExecute taints).
	should, keep bool
	pods         []*corev1.Pod // active pods, oldest first
}

func (m *Manager) syncDaemonSet(ctx context.Context, ds *appsv1.DaemonSet, nodes []corev1.Node, pods []*corev1.Pod, revs []*appsv1.ControllerRevision) error {
	hash, err := m.daemonRevision(ctx, ds, revs)
	if err != nil {
		return err
	}
	tmpl := daemonTemplate(ds, hash)
	byNode := map[string]*daemonNode{}
	var order []string
	desired := 0
	for i := range nodes {
		n := &nodes[i]
		should, keep := shouldRunDaemon(tmpl, n)
		byNode[n.Name] = &daemonNode{should: should, keep: keep}
		order = append(order, n.Name)
		if should {
			desired++
		}
	}
	sort.Strings(order)
	var errs []error
	del := func(p *corev1.Pod, why string) {
		if err := m.c.Delete(ctx, p, nil); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
			return
		}
		m.c.Record(ctx, ds, dsComponent, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: "+p.Name+why)
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].CreationTimestamp.Before(&pods[j].CreationTimestamp) })
	for _, p := range pods {
		dn := byNode[p.Spec.NodeName]
		switch {
		case p.DeletionTimestamp != nil:
		case dn == nil:
			del(p, " (its node is gone)")
		case p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded:
			// A daemon pod that ended is replaced, as Kubernetes does.
			del(p, " (it ended; a new one replaces it)")
		default:
			dn.pods = append(dn.pods, p)
		}
	}
	now := m.cfg.Now()
	st := appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, CollisionCount: ds.Status.CollisionCount, Conditions: ds.Status.Conditions,
		DesiredNumberScheduled: int32(desired)}
	rolling := ds.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType
	surge, unavailable := daemonRollingParams(ds, desired)
	surgeMode := surge > 0
	var create []string
	var replaceable []*corev1.Pod // available old pods, by node name
	for _, name := range order {
		dn := byNode[name]
		if !dn.should {
			// A pod may stay on a node whose NoSchedule taints it does not
			// tolerate; it counts as misscheduled.
			if len(dn.pods) > 0 {
				st.NumberMisscheduled++
			}
			for _, p := range dn.pods {
				if !dn.keep {
					del(p, " (it should not run on node "+name+")")
				}
			}
			continue
		}
		var cur, old []*corev1.Pod
		for _, p := range dn.pods {
			if p.Labels[RevisionHashLabel] == hash {
				cur = append(cur, p)
			} else {
				old = append(old, p)
			}
		}
		// One pod per node: surplus updated pods go, newest first.
		for len(cur) > 1 {
			del(cur[len(cur)-1], " (one per node)")
			cur = cur[:len(cur)-1]
		}
		if len(cur)+len(old) == 0 {
			create = append(create, name)
			continue
		}
		st.CurrentNumberScheduled++
		if len(cur) == 1 {
			st.UpdatedNumberScheduled++
		}
		ready, available := false, false
		for _, p := range dn.pods {
			ready = ready || podReady(p)
			available = available || podAvailable(p, ds.Spec.MinReadySeconds, now)
		}
		if ready {
			st.NumberReady++
		}
		if available {
			st.NumberAvailable++
		}
		switch {
		case len(old) == 0 || !rolling:
		case len(cur) == 1 && podAvailable(cur[0], ds.Spec.MinReadySeconds, now):
			for _, p := range old {
				del(p, " (replaced by "+cur[0].Name+")")
			}
		case len(cur) == 1:
			surge-- // a surged pod not yet available
		case !available && surgeMode:
			create = append(create, name) // replaced at once, outside the surge
		case !available:
			for _, p := range old {
				del(p, " (updating; it was not available)")
			}
		default:
			replaceable = append(replaceable, old[0])
		}
	}
	st.NumberUnavailable = st.DesiredNumberScheduled - st.NumberAvailable
	// Roll the available old pods within the budget: surge a new pod
	// beside each, or delete them while fewer than maxUnavailable nodes
	// are unavailable.
	budget := unavailable - int(st.NumberUnavailable)
	for _, p := range replaceable {
		switch {
		case surgeMode && surge > 0:
			create = append(create, p.Spec.NodeName)
			surge--
		case !surgeMode && budget > 0:
			del(p, " (updating)")
			budget--
		}
	}
	for _, name := range create {
		pod := daemonPod(ds, tmpl, name)
		if err := m.c.Create(ctx, pod); err != nil {
			m.c.Record(ctx, ds, dsComponent, corev1.EventTypeWarning, "FailedCreate", fmt.Sprintf("Error creating: %v", err))
			errs = append(errs, err)
			continue
		}
		m.c.Record(ctx, ds, dsComponent, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: "+pod.Name)
	}
	if err := m.cleanupDaemonHistory(ctx, ds, revs, pods, hash); err != nil {
		errs = append(errs, err)
	}
	if !equality.Semantic.DeepEqual(st, ds.Status) {
		ds.Status = st
		if err := m.c.UpdateStatus(ctx, ds); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// daemonRollingParams resolves maxSurge and maxUnavailable against the
// number of nodes that should run the DaemonSet (both round up, as in
// Kubernetes); with a surge, maxUnavailable is not used.
func daemonRollingParams(ds *appsv1.DaemonSet, desired int) (surge, unavailable int) {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ru == nil {
		return 0, 1
	}
	surge, _ = intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, desired, true)
	unavailable, _ = intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, desired, true)
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable
}

// podAvailable: Ready for at least minReadySeconds.
func podAvailable(p *corev1.Pod, minReady int32, now time.Time) bool {
	c := objects.PodCondition(p, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.Add(time.Duration(minReady)*time.Second).After(now)
}

// daemonTemplate is the DaemonSet's pod template as its pods get it: the
// revision hash label and the daemon tolerations added.
func daemonTemplate(ds *appsv1.DaemonSet, hash string) *corev1.PodTemplateSpec {
	t := ds.Spec.Template.DeepCopy()
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	t.Labels[RevisionHashLabel] = hash
	for _, tol := range daemonTolerations {
		has := false
		for _, o := range t.Spec.Tolerations {
			has = has || (o.Key == tol.Key && o.Effect == tol.Effect)
		}
		if !has {
			t.Spec.Tolerations = append(t.Spec.Tolerations, tol)
		}
	}
	return t
}

// shouldRunDaemon decides, as Kubernetes' DaemonSet controller does,
// whether a new daemon pod goes to node n (its nodeSelector and required
// affinity match, every NoSchedule and NoExecute taint is tolerated) and
// whether one already there may stay (NoExecute taints tolerated).
func shouldRunDaemon(t *corev1.PodTemplateSpec, n *corev1.Node) (should, keep bool) {
	pod := &corev1.Pod{Spec: t.Spec}
	if ok, err := nodeaffinity.GetRequiredNodeAffinity(pod).Match(n); !ok || err != nil {
		return false, false
	}
	if _, bad := sched.UntoleratedTaint(pod, n); !bad {
		return true, true
	}
	_, evicts := schedhelper.FindMatchingUntoleratedTaint(klog.Background(), n.Spec.Taints, t.Spec.Tolerations, func(taint *corev1.Taint) bool {
		return taint.Effect == corev1.TaintEffectNoExecute
	}, false)
	return false, !evicts
}

// daemonPod is a new pod of the DaemonSet bound to node, with Kubernetes'
// node affinity for exactly that node.
func daemonPod(ds *appsv1.DaemonSet, tmpl *corev1.PodTemplateSpec, node string) *corev1.Pod {
	pod := podFromTemplate(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"), tmpl)
	pod.Spec.NodeName = node
	if pod.Spec.Affinity == nil {
		pod.Spec.Affinity = &corev1.Affinity{}
	}
	pod.Spec.Affinity.NodeAffinity = &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{
			{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}}}}}}
	return pod
}

// daemonRevision makes sure a ControllerRevision of the DaemonSet's
// current template exists and has the highest revision number (a rollback
// to an older template renumbers its revision), and returns its hash.
func (m *Manager) daemonRevision(ctx context.Context, ds *appsv1.DaemonSet, revs []*appsv1.ControllerRevision) (string, error) {
	hash := templateHash(&ds.Spec.Template)
	var cur *appsv1.ControllerRevision
	var top int64
	for _, r := range revs {
		if r.Labels[RevisionHashLabel] == hash {
			cur = r
		} else {
			top = max(top, r.Revision)
		}
	}
	switch {
	case cur == nil:
		data, err := daemonPatch(ds)
		if err != nil {
			return "", err
		}
		labels := map[string]string{RevisionHashLabel: hash}
		for k, v := range ds.Spec.Template.Labels {
			labels[k] = v
		}
		r := &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{
				Name: ds.Name + "-" + hash, Namespace: ds.Namespace, Labels: labels, Annotations: changeCause(ds),
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))},
			},
			Data:     runtime.RawExtension{Raw: data},
			Revision: top + 1,
		}
		if err := m.c.Create(ctx, r); err != nil && !apierrors.IsAlreadyExists(err) {
			return "", err
		}
	case cur.Revision <= top:
		cur.Revision = top + 1
		if err := m.c.Update(ctx, cur); err != nil {
			return "", err
		}
	}
	return hash, nil
}

// changeCause carries the DaemonSet's kubernetes.io/change-cause to its
// revision, which `kubectl rollout history` shows.
func changeCause(ds *appsv1.DaemonSet) map[string]string {
	if c, ok := ds.Annotations["kubernetes.io/change-cause"]; ok {
		return map[string]string{"kubernetes.io/change-cause": c}
	}
	return nil
}

// daemonPatch is a revision's data as Kubernetes keeps it: a strategic
// merge patch that replaces the DaemonSet's pod template, which `kubectl
// rollout undo` sends back.
func daemonPatch(ds *appsv1.DaemonSet) ([]byte, error) {
	raw, err := json.Marshal(ds.Spec.Template)
	if err != nil {
		return nil, err
	}
	var tmpl map[string]any
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		return nil, err
	}
	tmpl["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": tmpl}})
}

// cleanupDaemonHistory deletes the oldest revisions beyond
// revisionHistoryLimit that no pod runs.
func (m *Manager) cleanupDaemonHistory(ctx context.Context, ds *appsv1.DaemonSet, revs []*appsv1.ControllerRevision, pods []*corev1.Pod, hash string) error {
	inUse := map[string]bool{hash: true}
	for _, p := range pods {
		inUse[p.Labels[RevisionHashLabel]] = true
	}
	var idle []*appsv1.ControllerRevision
	for _, r := range revs {
		if !inUse[r.Labels[RevisionHashLabel]] {
			idle = append(idle, r)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].Revision < idle[j].Revision })
	for i := 0; i < len(idle)-int(*ds.Spec.RevisionHistoryLimit); i++ {
		if err := m.c.Delete(ctx, idle[i], nil); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}
