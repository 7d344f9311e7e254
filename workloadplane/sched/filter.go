package sched

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedhelper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"

	mycelv1alpha1 "github.com/mycelfabric/mycel/api/mycel/v1alpha1"
)

// Members is what placement knows of the fabric's members.
type Members interface {
	// Live reports whether peer is alive (suspects included).
	Live(peer string) bool
	// Versions are the software versions peer's signed node record
	// advertises: "mycel", "runtime" (name/version), "os", "arch"; nil if
	// no record of it is known.
	Versions(peer string) map[string]string
	// Death is when membership declared peer dead (or gone), if it is,
	// and whether with confidence (it left, or independent members
	// confirmed the suspicion).
	Death(peer string) (at time.Time, confirmed, ok bool)
}

// Candidate is a node the owner may send a tender to.
type Candidate struct {
	Node string
	Peer string
	Zone string
}

// Reasons counts why nodes cannot take a pod, by reason phrase.
type Reasons map[string]int

// Message renders reasons as Kubernetes' scheduler does:
// "0/5 nodes are available: 3 insufficient memory, 2 node(s) were not ready."
func (r Reasons) Message(nodes int) string {
	var parts []string
	for reason, c := range r {
		parts = append(parts, fmt.Sprintf("%d %s", c, reason))
	}
	sort.Strings(parts)
	msg := fmt.Sprintf("0/%d nodes are available", nodes)
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, ", ")
	}
	return msg + "."
}

// Filter returns the nodes the pod may go to as far as the owner can tell
// (Ready, live, schedulable, matching nodeSelector and required node
// affinity, with every NoSchedule and NoExecute taint tolerated, meeting
// version requirements), and why the others cannot. Versions come
// from the members' signed node records, not from the Node objects.
func Filter(p *corev1.Pod, nodes []corev1.Node, members Members) ([]Candidate, Reasons, error) {
	reqs, err := ParseRequires(p.Annotations[mycelv1alpha1.AnnotationRequires])
	if err != nil {
		return nil, nil, err
	}
	affinity := nodeaffinity.GetRequiredNodeAffinity(p)
	reasons := Reasons{}
	var out []Candidate
	for i := range nodes {
		n := &nodes[i]
		peer := n.Labels[mycelv1alpha1.LabelPeerID]
		why := ""
		switch {
		case !ready(n) || peer == "" || !members.Live(peer):
			why = "node(s) were not ready"
		case (n.Spec.Unschedulable || n.Labels[mycelv1alpha1.LabelUnschedulable] == "true") && !ToleratesUnschedulable(p):
			why = "node(s) were unschedulable"
		default:
			if ok, _ := affinity.Match(n); !ok {
				why = "node(s) didn't match Pod's node affinity/selector"
			} else if t, bad := UntoleratedTaint(p, n); bad {
				why = fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value)
			} else if v := reqs.unmet(members.Versions(peer)); v != "" {
				why = "node(s) didn't have the required " + v
			}
		}
		if why != "" {
			reasons[why]++
			continue
		}
		out = append(out, Candidate{Node: n.Name, Peer: peer, Zone: n.Labels[corev1.LabelTopologyZone]})
	}
	return out, reasons, nil
}

// UntoleratedTaint returns the first NoSchedule or NoExecute taint of n that
// p does not tolerate, with kube-scheduler's matching rules.
func UntoleratedTaint(p *corev1.Pod, n *corev1.Node) (corev1.Taint, bool) {
	return schedhelper.FindMatchingUntoleratedTaint(klog.Background(), n.Spec.Taints, p.Spec.Tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
	}, false)
}

// ToleratesUnschedulable reports whether p may go to a cordoned node, as
// kube-scheduler decides: it tolerates the node.kubernetes.io/unschedulable
// NoSchedule taint (DaemonSet pods do).
func ToleratesUnschedulable(p *corev1.Pod) bool {
	t := corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}
	return schedhelper.TolerationsTolerateTaint(klog.Background(), p.Spec.Tolerations, &t, false)
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Requirement is one constraint of the mycel.io/requires annotation.
type Requirement struct {
	Key     string // mycel, runtime, arch or os
	AtLeast bool   // ">=" (else "=")
	Name    string // for runtime: the engine ("podman")
	Version string // may be empty for runtime=NAME
}

// Requirements are a pod's version constraints.
type Requirements []Requirement

// ParseRequires parses the mycel.io/requires annotation.
func ParseRequires(s string) (Requirements, error) {
	var out Requirements
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		var r Requirement
		k, v, ok := strings.Cut(part, ">=")
		if ok {
			r.AtLeast = true
		} else if k, v, ok = strings.Cut(part, "="); !ok {
			return nil, fmt.Errorf("sched: %s: %q is not KEY=VALUE or KEY>=VERSION (e.g. mycel>=0.2.0, runtime>=podman/4.3)", mycelv1alpha1.AnnotationRequires, part)
		}
		r.Key, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch r.Key {
		case "runtime":
			r.Name, r.Version, _ = strings.Cut(v, "/")
			if r.AtLeast && r.Version == "" {
				return nil, fmt.Errorf("sched: %s: %q needs a version (runtime>=podman/4.3)", mycelv1alpha1.AnnotationRequires, part)
			}
		case "mycel", "arch", "os":
			r.Version = v
		default:
			return nil, fmt.Errorf("sched: %s: unknown key %q (want mycel, runtime, arch or os)", mycelv1alpha1.AnnotationRequires, r.Key)
		}
		if r.AtLeast && !numeric(r.Version) {
			return nil, fmt.Errorf("sched: %s: %q: %q is not a dotted version", mycelv1alpha1.AnnotationRequires, part, r.Version)
		}
		out = append(out, r)
	}
	return out, nil
}

// unmet returns the first requirement a node with the given versions does
// not meet, as text.
func (rs Requirements) unmet(have map[string]string) string {
	rtName, rtVersion, _ := strings.Cut(have["runtime"], "/")
	for _, r := range rs {
		ok := false
		switch r.Key {
		case "runtime":
			ok = rtName == r.Name && (r.Version == "" || versionOK(rtVersion, r.Version, r.AtLeast))
		default:
			ok = versionOK(have[r.Key], r.Version, r.AtLeast)
		}
		if !ok {
			if r.AtLeast {
				return r.Key + ">=" + join(r.Name, r.Version)
			}
			return r.Key + "=" + join(r.Name, r.Version)
		}
	}
	return ""
}

func join(name, version string) string {
	switch {
	case name == "":
		return version
	case version == "":
		return name
	}
	return name + "/" + version
}

// versionOK compares dotted versions: equal (on the parts want gives, so
// "4.3" matches "4.3.1"), or at least.
func versionOK(have, want string, atLeast bool) bool {
	if !atLeast {
		return have == want || strings.HasPrefix(have, want+".")
	}
	h, w := strings.Split(have, "."), strings.Split(want, ".")
	for i := range w {
		if i >= len(h) {
			return false
		}
		hv, err1 := strconv.Atoi(strings.TrimLeft(h[i], "v"))
		wv, err2 := strconv.Atoi(w[i])
		if err1 != nil || err2 != nil {
			return false
		}
		if hv != wv {
			return hv > wv
		}
	}
	return true
}

func numeric(v string) bool {
	for p := range strings.SplitSeq(v, ".") {
		if _, err := strconv.Atoi(p); err != nil {
			return false
		}
	}
	return v != ""
}
