package kubeapi

import (
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
)

// tableConvertor renders objects of one type as Table rows, with the same
// columns `kubectl get` shows against Kubernetes (priority 1 columns appear
// with -o wide).
type tableConvertor struct {
	columns []metav1.TableColumnDefinition
	cells   func(obj object, now time.Time) []any
}

func col(name, typ, desc string, priority int32) metav1.TableColumnDefinition {
	format := ""
	if name == "Name" {
		format = "name"
	}
	return metav1.TableColumnDefinition{Name: name, Type: typ, Format: format, Description: desc, Priority: priority}
}

var nameCol = col("Name", "string", "Name must be unique within a namespace.", 0)
var ageCol = col("Age", "string", "Time since the object was created.", 0)

func age(obj object, now time.Time) string {
	return since(obj.GetCreationTimestamp().Time, now)
}

func since(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

var namespaceTable = tableConvertor{
	columns: []metav1.TableColumnDefinition{nameCol, col("Status", "string", "The status of the namespace", 0), ageCol},
	cells: func(o object, now time.Time) []any {
		ns := o.(*corev1.Namespace)
		return []any{ns.Name, string(ns.Status.Phase), age(o, now)}
	},
}

var podTable = tableConvertor{
	columns: []metav1.TableColumnDefinition{
		nameCol,
		col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic.", 0),
		col("Status", "string", "The aggregate status of the containers in this pod.", 0),
		col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", 0),
		ageCol,
		col("IP", "string", "IP address allocated to the pod.", 1),
		col("Node", "string", "Name of the node the pod is assigned to.", 1),
		col("Nominated Node", "string", "Name of the node the pod is nominated to.", 1),
		col("Readiness Gates", "string", "Pod readiness gates.", 1),
	},
	cells: func(o object, now time.Time) []any {
		p := o.(*corev1.Pod)
		ready, restarts := 0, int32(0)
		var lastRestart time.Time
		reason := string(p.Status.Phase)
		if p.Status.Reason != "" {
			reason = p.Status.Reason
		}
		for _, cs := range p.Status.ContainerStatuses {
			restarts += cs.RestartCount
			if cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.FinishedAt.After(lastRestart) {
				lastRestart = cs.LastTerminationState.Terminated.FinishedAt.Time
			}
			if cs.Ready && cs.State.Running != nil {
				ready++
			}
		}
		// As kubectl: the last waiting or terminated reason wins.
		for i := len(p.Status.ContainerStatuses) - 1; i >= 0; i-- {
			cs := p.Status.ContainerStatuses[i]
			switch {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				reason = cs.State.Waiting.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
				reason = cs.State.Terminated.Reason
			case cs.State.Terminated != nil:
				reason = fmt.Sprintf("ExitCode:%d", cs.State.Terminated.ExitCode)
			default:
				continue
			}
			break
		}
		if p.DeletionTimestamp != nil {
			reason = "Terminating"
		}
		r := fmt.Sprint(restarts)
		if !lastRestart.IsZero() {
			r = fmt.Sprintf("%d (%s ago)", restarts, since(lastRestart, now))
		}
		return []any{p.Name, fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers)), reason, r, age(o, now),
			orNone(p.Status.PodIP), orNone(p.Spec.NodeName), orNone(p.Status.NominatedNodeName), "<none>"}
	},
}

var nodeTable = tableConvertor{
	columns: []metav1.TableColumnDefinition{
		nameCol,
		col("Status", "string", "The status of the node", 0),
		col("Roles", "string", "The roles of the node", 0),
		ageCol,
		col("Version", "string", "Kubelet Version reported by the node.", 0),
		col("Internal-IP", "string", "List of internal IPs.", 1),
		col("External-IP", "string", "List of external IPs.", 1),
		col("OS-Image", "string", "OS Image reported by the node.", 1),
		col("Kernel-Version", "string", "Kernel version reported by the node.", 1),
		col("Container-Runtime", "string", "Container Runtime Version reported by the node.", 1),
	},
	cells: func(o object, now time.Time) []any {
		n := o.(*corev1.Node)
		status := "Unknown"
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				status = map[corev1.ConditionStatus]string{corev1.ConditionTrue: "Ready", corev1.ConditionFalse: "NotReady"}[c.Status]
				if status == "" {
					status = "Unknown"
				}
			}
		}
		if n.Spec.Unschedulable {
			status += ",SchedulingDisabled"
		}
		var roles []string
		for k := range n.Labels {
			if r, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && r != "" {
				roles = append(roles, r)
			}
		}
		sort.Strings(roles)
		addr := map[corev1.NodeAddressType][]string{}
		for _, a := range n.Status.Addresses {
			addr[a.Type] = append(addr[a.Type], a.Address)
		}
		return []any{n.Name, status, orNone(strings.Join(roles, ",")), age(o, now), n.Status.NodeInfo.KubeletVersion,
			orNone(strings.Join(addr[corev1.NodeInternalIP], ",")), orNone(strings.Join(addr[corev1.NodeExternalIP], ",")),
			n.Status.NodeInfo.OSImage, n.Status.NodeInfo.KernelVersion, n.Status.NodeInfo.ContainerRuntimeVersion}
	},
}

var eventTable = tableConvertor{
	columns: []metav1.TableColumnDefinition{
		col("Last Seen", "string", "Time since the event was last seen.", 0),
		col("Type", "string", "Type of the event.", 0),
		col("Reason", "string", "Short, machine understandable string.", 0),
		col("Object", "string", "The object this event is about.", 0),
		col("Message", "string", "A human-readable description.", 0),
		col("Source", "string", "The component reporting this event.", 1),
		col("Count", "integer", "The number of times this event has occurred.", 1),
		nameCol,
	},
	cells: func(o object, now time.Time) []any {
		e := o.(*corev1.Event)
		last := e.LastTimestamp.Time
		if last.IsZero() {
			last = e.EventTime.Time
		}
		obj := strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
		return []any{since(last, now), e.Type, e.Reason, obj, strings.TrimSpace(e.Message), e.Source.Component, int64(e.Count), e.Name}
	},
}

func containersImages(s *corev1.PodSpec) (string, string) {
	var names, images []string
	for _, c := range s.Containers {
		names = append(names, c.Name)
		images = append(images, c.Image)
	}
	return strings.Join(names, ","), strings.Join(images, ",")
}

var deploymentTable = tableConvertor{
	columns: []metav1.TableColumnDefinition{
		nameCol,
		col("Ready", "string", "Number of the pod with ready state", 0),
		col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec.", 0),
		col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.", 0),
		ageCol,
		col("Containers", "string", "Names of each container in the template.", 1),
		col("Images", "string", "Images referenced by each container in the template.", 1),
		col("Selector", "string", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.", 1),
	},
	cells: func(o object, now time.Time) []any {
		d := o.(*appsv1.Deployment)
		names, images := containersImages(&d.Spec.Template.Spec)
		return []any{d.Name, fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, *d.Spec.Replicas), int64(d.Status.UpdatedReplicas),
			int64(d.Status.AvailableReplicas), age(o, now), names, images, metav1.FormatLabelSelector(d.Spec.Selector)}
	},
}

var replicaSetTable = tableConvertor{
	columns: []metav1.TableColumnDefinition{
		nameCol,
		col("Desired", "integer", "Number of desired pods.", 0),
		col("Current", "integer", "Number of actual replicas.", 0),
		col("Ready", "integer", "The number of ready replicas for this replica set.", 0),
		ageCol,
		col("Containers", "string", "Names of each container in the template.", 1),
		col("Images", "string", "Images referenced by each container in the template.", 1),
		col("Selector", "string", "Label selector for pods.", 1),
	},
	cells: func(o object, now time.Time) []any {
		rs := o.(*appsv1.ReplicaSet)
		names, images := containersImages(&rs.Spec.Template.Spec)
		return []any{rs.Name, int64(*rs.Spec.Replicas), int64(rs.Status.Replicas), int64(rs.Status.ReadyReplicas),
			age(o, now), names, images, metav1.FormatLabelSelector(rs.Spec.Selector)}
	},
}
