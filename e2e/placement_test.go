package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runningPods returns, as n lists them, the Running pods of app by node.
func runningPods(n *node, app string) (map[string]int, int) {
	out := n.kubectl("get", "pods", "-l", "app="+app, "--no-headers", "-o", "custom-columns=NODE:.spec.nodeName,PHASE:.status.phase,DELETING:.metadata.deletionTimestamp")
	per, total := map[string]int{}, 0
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		total++
		if f[1] == "Running" && f[2] == "<none>" {
			per[f[0]]++
		}
	}
	return per, total
}

// TestPlacementSpreadsAndHeals: a 6-replica Deployment spreads 2/2/2 over
// three nodes with real Podman containers; after kill -9 of one of them its
// pods are re-placed and Running on the other two; when it comes back, its
// stale containers are removed and nothing is duplicated.
func TestPlacementSpreadsAndHeals(t *testing.T) {
	a := startNode(t)
	b, c := joinNode(t, a), joinNode(t, a)
	all := []*node{a, b, c}
	waitReady(t, all, all)

	if out, err := a.kubectlIn(deployment("heal", 6, "v1"), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	rollout(b, "heal")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pods as %s lists them:\n%s", a.name, a.kubectl("get", "pods", "-o", "wide"))
		}
	})
	for _, n := range all {
		expectRunning(t, n, "heal", 2)
	}

	c.kill9()
	for _, n := range []*node{a, b} {
		eventually(t, 90*time.Second, func() error {
			per, total := runningPods(n, "heal")
			if per[a.name]+per[b.name] != 6 || per[c.name] != 0 || total != 6 {
				return fmt.Errorf("%s lists %d pods, Running per node %v; want 6 on %s and %s", n.name, total, per, a.name, b.name)
			}
			return nil
		})
	}
	eventually(t, 90*time.Second, func() error {
		if got := len(running(a, "heal")) + len(running(b, "heal")); got != 6 {
			return fmt.Errorf("%d containers of heal running on the live nodes, want 6", got)
		}
		return nil
	})
	if ev := a.kubectl("get", "events", "--field-selector", "reason=NodeLost", "--no-headers"); !strings.Contains(ev, c.name) {
		t.Errorf("no NodeLost event naming %s:\n%s", c.name, ev)
	}

	c.start()
	expectRunning(t, c, "heal", 0)
	for _, n := range all {
		eventually(t, 60*time.Second, func() error {
			per, total := runningPods(n, "heal")
			if total != 6 || per[a.name]+per[b.name] != 6 {
				return fmt.Errorf("%s lists %d pods, Running per node %v; want the same 6", n.name, total, per)
			}
			return nil
		})
	}
	if got := len(running(a, "heal")) + len(running(b, "heal")) + len(running(c, "heal")); got != 6 {
		t.Errorf("%d containers of heal running after %s came back, want 6", got, c.name)
	}
}

// TestUnplaceablePodsSayWhy: a pod whose nodeSelector nothing matches and
// one asking for more memory than any node has stay Pending, with the
// reasons in `kubectl describe pod` and in FailedScheduling events.
func TestUnplaceablePodsSayWhy(t *testing.T) {
	a := startNode(t, func(n *node) { n.args = []string{"--capacity", "memory=1Gi"} })
	b := joinNode(t, a, func(n *node) { n.args = []string{"--capacity", "memory=1Gi"} })
	waitReady(t, []*node{a, b}, []*node{a, b})
	pods := `apiVersion: v1
kind: Pod
metadata: {name: nowhere, namespace: default}
spec:
  nodeSelector: {disk: ssd}
  containers: [{name: web, image: ` + demoImage + `}]
---
apiVersion: v1
kind: Pod
metadata: {name: too-big, namespace: default}
spec:
  containers:
  - name: web
    image: ` + demoImage + `
    resources: {requests: {memory: 2Gi}}
`
	if out, err := b.kubectlIn(pods, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	for pod, want := range map[string]string{
		"nowhere": "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
		"too-big": "0/2 nodes are available: 2 insufficient memory.",
	} {
		a.kubectl("wait", "--for=condition=PodScheduled=False", "pod/"+pod, "--timeout=60s")
		eventually(t, 30*time.Second, func() error {
			if d := a.kubectl("describe", "pod", pod); !strings.Contains(d, want) || !strings.Contains(d, "Pending") {
				return fmt.Errorf("describe pod %s lacks %q or Pending:\n%s", pod, want, d)
			}
			if ev := a.kubectl("get", "events", "--field-selector", "involvedObject.name="+pod+",reason=FailedScheduling", "--no-headers"); !strings.Contains(ev, want) {
				return fmt.Errorf("no FailedScheduling event for %s saying %q:\n%s", pod, want, ev)
			}
			return nil
		})
	}
}

// TestPlacementPolicyDeniesLabelledNode: with a placement policy that
// refuses nodes labelled tier=restricted, no replica lands on such a node,
// and a pod that may only go there says the policy denied it.
func TestPlacementPolicyDeniesLabelledNode(t *testing.T) {
	dir := t.TempDir()
	admission, err := os.ReadFile("../policies/admission.rego")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "admission.rego"), admission, 0o644)
	os.WriteFile(filepath.Join(dir, "placement.rego"), []byte(`package mycel.placement

deny contains "restricted-tier: this node takes no general workloads" if input.node.labels.tier == "restricted"

score := 100 - (100 * object.get(input, ["siblings", "node"], 0))
`), 0o644)
	policy := func(n *node) { n.policyDir = dir }
	a := startNode(t, policy)
	b := joinNode(t, a, policy, func(n *node) { n.labels = "tier=restricted" })
	waitReady(t, []*node{a, b}, []*node{a, b})
	if out, err := a.kubectlIn(deployment("general", 4, "v1"), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	rollout(b, "general")
	expectRunning(t, a, "general", 4)
	if got := running(b, "general"); len(got) != 0 {
		t.Errorf("restricted node runs %v", got)
	}
	pinned := `apiVersion: v1
kind: Pod
metadata: {name: pinned, namespace: default}
spec:
  nodeSelector: {tier: restricted}
  containers: [{name: web, image: ` + demoImage + `}]
`
	if out, err := a.kubectlIn(pinned, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	a.kubectl("wait", "--for=condition=PodScheduled=False", "pod/pinned", "--timeout=60s")
	want := "0/2 nodes are available: 1 denied by placement policy: restricted-tier: this node takes no general workloads, 1 node(s) didn't match Pod's node affinity/selector."
	eventually(t, 30*time.Second, func() error {
		if d := a.kubectl("describe", "pod", "pinned"); !strings.Contains(d, want) {
			return fmt.Errorf("describe pod pinned lacks %q:\n%s", want, d)
		}
		return nil
	})
}
