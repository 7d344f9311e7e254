package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const budget = `apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: default
spec:
  minAvailable: 2
  selector:
    matchLabels: {app: web}
`

// webNodes counts the live web pods per node.
func webNodes(n *node) map[string]int {
	out := map[string]int{}
	for _, pod := range livePods(n, "web", "NODE:.spec.nodeName") {
		out[pod[0]]++
	}
	return out
}

// TestDrainHonoursTheDisruptionBudget: three web pods all on node b (the
// others cordoned while they were placed) and a budget of minAvailable 2;
// `kubectl drain b --ignore-daemonsets` evicts them through the budget
// (kubectl retries the evictions it refuses), so they move to a and c while
// at least two stay available, and the DaemonSet's pod stays on b.
func TestDrainHonoursTheDisruptionBudget(t *testing.T) {
	a := startNode(t)
	b := joinNode(t, a)
	c := joinNode(t, a)
	a.kubectl("cordon", a.name, c.name)
	if out, err := a.kubectlIn(deployment("web", 3, "hi")+"---\n"+budget+"---\n"+fmt.Sprintf(daemonSet, demoImage), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	rollout(a, "web")
	if got := webNodes(a); got[b.name] != 3 {
		t.Fatalf("web pods by node %v, want all 3 on %s", got, b.name)
	}
	a.kubectl("wait", "--for=jsonpath={.status.disruptionsAllowed}=1", "pdb/web", "--timeout=30s")
	if out := a.kubectl("get", "pdb", "web", "--no-headers"); !strings.HasPrefix(strings.Join(strings.Fields(out), " "), "web 2 N/A 1") {
		t.Fatalf("kubectl get pdb: %q, want MIN AVAILABLE 2, MAX UNAVAILABLE N/A, ALLOWED DISRUPTIONS 1", out)
	}
	a.kubectl("uncordon", a.name, c.name)

	out, err := a.kubectlErr("drain", b.name, "--ignore-daemonsets", "--timeout=180s")
	if err != nil {
		t.Fatalf("kubectl drain: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Cannot evict pod as it would violate the pod's disruption budget") || !strings.Contains(out, "drained") {
		t.Fatalf("kubectl drain did not wait on the budget:\n%s", out)
	}
	if got := webNodes(a); got[b.name] != 0 || got[a.name]+got[c.name] != 3 {
		t.Fatalf("web pods by node after the drain %v, want 3 on %s and %s", got, a.name, c.name)
	}
	rollout(a, "web")
	expectDaemonNodes(t, a, a.name, b.name, c.name)
	if st := a.kubectl("get", "node", b.name, "--no-headers"); !strings.Contains(st, "SchedulingDisabled") {
		t.Fatalf("drained node: %q", st)
	}
	a.kubectl("uncordon", b.name)
	eventually(t, 30*time.Second, func() error {
		if st := a.kubectl("get", "node", b.name, "--no-headers"); strings.Contains(st, "SchedulingDisabled") {
			return fmt.Errorf("uncordoned node: %q", st)
		}
		return nil
	})
}
