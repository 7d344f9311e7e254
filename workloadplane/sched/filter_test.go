package sched

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mycelv1alpha1 "github.com/mycelfabric/mycel/api/mycel/v1alpha1"
)

// fakeMembers are members with the versions their records advertise;
// those in dead are not live.
type fakeMembers struct {
	versions map[string]map[string]string
	dead     map[string]bool
}

func (m fakeMembers) Live(peer string) bool                  { return !m.dead[peer] }
func (m fakeMembers) Versions(peer string) map[string]string { return m.versions[peer] }
func (m fakeMembers) Death(string) (time.Time, bool, bool)   { return time.Time{}, false, false }

func node(name string, ready bool, labels map[string]string) corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	l := map[string]string{mycelv1alpha1.LabelPeerID: "peer-" + name}
	for k, v := range labels {
		l[k] = v
	}
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}},
			// What a Node says of versions is not what placement reads.
			NodeInfo: corev1.NodeSystemInfo{ContainerRuntimeVersion: "podman://99.0.0", KubeletVersion: "mycel/v99.0.0"}}}
}

func versions(runtime, mycel string) map[string]string {
	return map[string]string{"runtime": runtime, "mycel": mycel, "arch": "amd64", "os": "linux"}
}

func names(cs []Candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Node)
	}
	return out
}

func TestFilterExplains(t *testing.T) {
	nodes := []corev1.Node{
		node("a", true, map[string]string{"zone": "z1"}),
		node("b", true, map[string]string{"zone": "z2"}),
		node("c", false, map[string]string{"zone": "z1"}),
		node("d", true, map[string]string{"zone": "z1", mycelv1alpha1.LabelUnschedulable: "true"}),
		node("e", true, map[string]string{"zone": "z1"}),
	}
	members := fakeMembers{dead: map[string]bool{"peer-e": true}, versions: map[string]map[string]string{
		"peer-a": versions("podman/4.3.1", "0.1.0"), "peer-b": versions("podman/5.2.0", "0.2.1"),
		"peer-c": versions("podman/5.2.0", "0.2.1"), "peer-d": versions("podman/5.2.0", "0.2.1"), "peer-e": versions("sim/1.0", "0.2.1"),
	}}
	cases := []struct {
		name        string
		selector    map[string]string
		requires    string
		affinity    *corev1.Affinity
		want, other string
	}{
		{name: "any", want: "[a b]", other: "0/5 nodes are available: 1 node(s) were unschedulable, 2 node(s) were not ready."},
		{name: "selector", selector: map[string]string{"zone": "z1"}, want: "[a]"},
		{name: "nothing matches", selector: map[string]string{"zone": "z9"}, want: "[]",
			other: "0/5 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector, 2 node(s) were not ready."},
		{name: "newer runtime", requires: "runtime>=podman/5", want: "[b]",
			other: "0/5 nodes are available: 1 node(s) didn't have the required runtime>=podman/5, 1 node(s) were unschedulable, 2 node(s) were not ready."},
		{name: "mycel version", requires: "mycel>=0.2.0, arch=amd64", want: "[b]"},
		{name: "exact version prefix", requires: "mycel=0.1", want: "[a]"},
		{name: "affinity", affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"z1"}}}}}}}},
			want: "[b]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "p1", Annotations: map[string]string{mycelv1alpha1.AnnotationRequires: c.requires}},
				Spec: corev1.PodSpec{NodeSelector: c.selector, Affinity: c.affinity}}
			got, reasons, err := Filter(pod, nodes, members)
			if err != nil {
				t.Fatal(err)
			}
			if g := "[" + strings.Join(names(got), " ") + "]"; g != c.want {
				t.Errorf("candidates %s, want %s", g, c.want)
			}
			if c.other != "" {
				if msg := reasons.Message(len(nodes)); msg != c.other {
					t.Errorf("message\n %q\nwant\n %q", msg, c.other)
				}
			}
		})
	}
}

func TestParseRequiresRejectsNonsense(t *testing.T) {
	for _, bad := range []string{"gpu>=3", "runtime>=podman", "mycel>=latest", "mycel"} {
		if _, err := ParseRequires(bad); err == nil {
			t.Errorf("ParseRequires(%q) accepted it", bad)
		}
	}
}

func FuzzParseRequires(f *testing.F) {
	f.Add("mycel>=0.2.0, runtime>=podman/4.3")
	f.Add("runtime=podman,arch=amd64,os=linux")
	f.Add(">=,=,,mycel>=1..2")
	f.Fuzz(func(t *testing.T, s string) {
		reqs, err := ParseRequires(s)
		if err != nil {
			return
		}
		for _, r := range reqs {
			if r.AtLeast && !numeric(r.Version) {
				t.Fatalf("%q: accepted >= with a non-numeric version %q", s, r.Version)
			}
		}
		// Whatever parses can be checked against any node without panicking.
		reqs.unmet(versions("podman/4.3.1", "0.1.0"))
		reqs.unmet(nil)
	})
}

func TestFilterHonoursTaintsAndCordons(t *testing.T) {
	tainted := func(name string, taint corev1.Taint) corev1.Node {
		n := node(name, true, nil)
		n.Spec.Taints = []corev1.Taint{taint}
		return n
	}
	cordoned := node("c", true, nil)
	cordoned.Spec.Unschedulable = true
	nodes := []corev1.Node{
		tainted("a", corev1.Taint{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}),
		tainted("b", corev1.Taint{Key: "evict", Effect: corev1.TaintEffectNoExecute}),
		cordoned,
		node("d", true, nil),
		tainted("e", corev1.Taint{Key: "soft", Effect: corev1.TaintEffectPreferNoSchedule}),
	}
	unschedulable := corev1.Toleration{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
	onC := &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"c"}}}}}}}}
	cases := []struct {
		name        string
		tolerations []corev1.Toleration
		affinity    *corev1.Affinity
		want, other string
	}{
		{name: "none tolerated", want: "[d e]",
			other: "0/5 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) had untolerated taint {evict: }, 1 node(s) were unschedulable."},
		{name: "equal value", tolerations: []corev1.Toleration{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}, want: "[a d e]"},
		{name: "wrong value", tolerations: []corev1.Toleration{{Key: "dedicated", Value: "cpu"}}, want: "[d e]"},
		{name: "NoExecute for a while", tolerations: []corev1.Toleration{{Key: "evict", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: new(int64(30))}}, want: "[b d e]"},
		{name: "everything", tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}, want: "[a b c d e]"},
		{name: "cordoned node by name", tolerations: []corev1.Toleration{unschedulable}, affinity: onC, want: "[c]"},
		{name: "by name without the toleration", affinity: onC, want: "[]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{Tolerations: c.tolerations, Affinity: c.affinity}}
			got, reasons, err := Filter(pod, nodes, fakeMembers{})
			if err != nil {
				t.Fatal(err)
			}
			if g := "[" + strings.Join(names(got), " ") + "]"; g != c.want {
				t.Errorf("candidates %s, want %s", g, c.want)
			}
			if msg := reasons.Message(len(nodes)); c.other != "" && msg != c.other {
				t.Errorf("message\n %q\nwant\n %q", msg, c.other)
			}
		})
	}
}
