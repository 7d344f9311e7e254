package agent

import (
	"context"
	"maps"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mycelv1alpha1 "github.com/mycelfabric/mycel/api/mycel/v1alpha1"
	"github.com/mycelfabric/mycel/machineplane/host"
	"github.com/mycelfabric/mycel/machineplane/noderecord"
)

// The kubelet's part: the agent keeps its node's Node object. Labels,
// capacity and versions are derived from the node's signed record, so the
// Node, the DHT and the placement filter say the same; the Ready condition
// says whether the container runtime answers.

// StatusReportEvery is how long a Node status that has not changed goes
// without a write, as kubelet's nodeStatusReportFrequency: its
// lastHeartbeatTime is refreshed this often, and any change is written at
// once. Liveness is membership's business, not the heartbeat's.
const StatusReportEvery = 5 * time.Minute

// RunHeartbeat checks the node's Node object now, every
// Config.HeartbeatInterval, and whenever another node has overruled it
// (marked it Ready=Unknown, or deleted it) until ctx is done. A Node's
// owner marks it Unknown while membership holds the node dead; a node that
// restarts within that time would otherwise stay Unknown, and get no pods,
// until its next heartbeat.
func (a *Agent) RunHeartbeat(ctx context.Context) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	changed := make(chan struct{}, 1)
	go a.cfg.Client.Notify(ctx, "nodes", changed)
	for due := true; ; {
		if due {
			if err := a.Heartbeat(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn("publish node status", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			due = true
		case <-changed:
			due = a.overruled(ctx)
		}
	}
}

// overruled reports whether the node's Node was deleted or marked
// Ready=Unknown, which only other nodes do.
func (a *Agent) overruled(ctx context.Context) bool {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName}}
	if err := a.cfg.Client.Get(ctx, node); err != nil {
		return apierrors.IsNotFound(err)
	}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionUnknown
		}
	}
	return false
}

// Heartbeat creates or updates the node's Node object and its status.
func (a *Agent) Heartbeat(ctx context.Context) error {
	rec, err := a.cfg.Record(ctx)
	if err != nil {
		return err
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName}}
	err = a.cfg.Client.Get(ctx, node)
	if apierrors.IsNotFound(err) {
		node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Labels: NodeLabels(rec)}}
		if err := a.cfg.Client.Create(ctx, node); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		if err := a.cfg.Client.Get(ctx, node); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	// Mycel owns the labels the record gives; labels users added stay.
	labels := maps.Clone(node.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, NodeLabels(rec))
	if !maps.Equal(labels, node.Labels) {
		node.Labels = labels
		if err := a.cfg.Client.Update(ctx, node); err != nil {
			return err
		}
	}
	node.Status = a.nodeStatus(ctx, rec, node.Status)
	return a.cfg.Client.UpdateStatus(ctx, node)
}

// NodeLabels are the labels a node's record gives its Node: host name, OS,
// architecture, peer ID, and the node's --labels.
func NodeLabels(r *noderecord.Record) map[string]string {
	l := map[string]string{
		corev1.LabelHostname:      r.Name,
		corev1.LabelOSStable:      r.Versions["os"],
		corev1.LabelArchStable:    r.Versions["arch"],
		mycelv1alpha1.LabelPeerID: r.PeerID,
	}
	maps.Copy(l, r.Labels)
	return l
}

// ResourceList reads a record's resource quantities (capacity or
// allocatable); unparsable entries are left out.
func ResourceList(m map[string]string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for k, v := range m {
		if q, err := resource.ParseQuantity(v); err == nil {
			out[corev1.ResourceName(k)] = q
		}
	}
	return out
}

func (a *Agent) nodeStatus(ctx context.Context, rec *noderecord.Record, old corev1.NodeStatus) corev1.NodeStatus {
	now := metav1.NewTime(a.cfg.Now())
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "MycelReady", Message: "mycel node is ready and its container runtime answers"}
	if _, err := a.cfg.Runtime.Info(ctx); err != nil {
		ready.Status, ready.Reason, ready.Message = corev1.ConditionFalse, "ContainerRuntimeUnavailable", "container runtime is down: "+err.Error()
	} else if err := a.Healthy(); err != nil {
		ready.Status, ready.Reason, ready.Message = corev1.ConditionFalse, "ContainerRuntimeUnavailable", "container runtime is down: "+err.Error()
	}
	ready.LastHeartbeatTime = now
	ready.LastTransitionTime = now
	var prev *corev1.NodeCondition
	for i, c := range old.Conditions {
		if c.Type == corev1.NodeReady && c.Status == ready.Status {
			ready.LastTransitionTime = c.LastTransitionTime
			prev = &old.Conditions[i]
		}
	}
	if prev != nil && now.Sub(prev.LastHeartbeatTime.Time) < StatusReportEvery {
		// Keep a recent heartbeat, so that an unchanged status is not
		// rewritten; a change refreshes it (below).
		ready.LastHeartbeatTime = prev.LastHeartbeatTime
	}
	rtName, rtVersion, ok := strings.Cut(rec.Versions["runtime"], "/")
	if !ok {
		rtName, rtVersion = "podman", "unknown"
	}
	apiHost := ""
	if u, err := url.Parse(rec.APIURL); err == nil {
		apiHost = u.Hostname()
	}
	st := corev1.NodeStatus{
		Capacity:    ResourceList(rec.Capacity),
		Allocatable: ResourceList(rec.Allocatable),
		Phase:       corev1.NodeRunning,
		Conditions:  []corev1.NodeCondition{ready},
		Addresses:   []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: apiHost}, {Type: corev1.NodeHostName, Address: a.cfg.Machine.Hostname}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:               rec.PeerID,
			KernelVersion:           a.cfg.Machine.KernelVersion,
			OSImage:                 a.cfg.Machine.OSImage,
			ContainerRuntimeVersion: rtName + "://" + rtVersion,
			KubeletVersion:          "mycel/v" + rec.Versions["mycel"],
			OperatingSystem:         rec.Versions["os"],
			Architecture:            rec.Versions["arch"],
		},
	}
	if !apiequality.Semantic.DeepEqual(st, old) {
		st.Conditions[0].LastHeartbeatTime = now // a change is a heartbeat too
	}
	return st
}

// DefaultMaxPods is how many pods a node takes, as a kubelet's default.
const DefaultMaxPods = 110

// Capacity is what a machine offers: its CPUs, memory and DefaultMaxPods
// pods, or what overrides say instead (--capacity).
func Capacity(m host.Machine, overrides corev1.ResourceList) corev1.ResourceList {
	c := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(m.CPUs), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(m.MemoryBytes, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(DefaultMaxPods, resource.DecimalSI),
	}
	maps.Copy(c, overrides)
	return c
}
