package objects

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// nodeResource is core/v1 nodes. Each node writes its own Node (the agent
// owns its status); the node-lifecycle controller marks the Nodes of dead
// members Ready=Unknown.
func nodeResource() *Resource {
	return &Resource{
		GroupVersion: corev1.SchemeGroupVersion, Plural: "nodes", Singular: "node", Kind: "Node",
		ShortNames: []string{"no"}, Subresources: []string{"status"},
		install: corev1.AddToScheme,
		newObj:  func() Object { return &corev1.Node{} },
		newList: func() runtime.Object { return &corev1.NodeList{} },
		fields: func(o Object) fields.Set {
			return fields.Set{"spec.unschedulable": fmt.Sprint(o.(*corev1.Node).Spec.Unschedulable)}
		},
		defaults: func(o Object) { defaultTaints(o.(*corev1.Node).Spec.Taints) },
		validate: func(obj, old Object) field.ErrorList {
			errs := validateMeta(obj, old, false, apivalidation.NameIsDNSSubdomain)
			return append(errs, validateTaints(obj.(*corev1.Node).Spec.Taints, field.NewPath("spec", "taints"))...)
		},
		columns: []metav1.TableColumnDefinition{
			nameCol(),
			col("Status", "string", "The status of the node", 0),
			col("Roles", "string", "The roles of the node", 0),
			ageCol(),
			col("Version", "string", "Kubelet Version reported by the node.", 0),
			col("Internal-IP", "string", "List of internal IPs.", 1),
			col("External-IP", "string", "List of external IPs.", 1),
			col("OS-Image", "string", "OS Image reported by the node.", 1),
			col("Kernel-Version", "string", "Kernel version reported by the node.", 1),
			col("Container-Runtime", "string", "Container Runtime Version reported by the node.", 1),
		},
		cells: nodeCells,
	}
}

func nodeCells(o Object, now time.Time) []any {
	n := o.(*corev1.Node)
	status := "Unknown"
	if c := NodeCondition(n, corev1.NodeReady); c != nil {
		switch c.Status {
		case corev1.ConditionTrue:
			status = "Ready"
		case corev1.ConditionFalse:
			status = "NotReady"
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
}

// NodeCondition returns n's condition of type t, or nil.
func NodeCondition(n *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == t {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}
