package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

const daemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: default
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: web
        image: %s
        env: [{name: GREETING, value: one}]
        resources:
          limits: {cpu: 50m, memory: 32Mi}
`

// daemonNodes returns the sorted nodes of the DaemonSet's live pods.
func daemonNodes(n *node) []string {
	var nodes []string
	for _, pod := range livePods(n, "agent", "NODE:.spec.nodeName") {
		nodes = append(nodes, pod[0])
	}
	sort.Strings(nodes)
	return nodes
}

// livePods returns the columns of the app's pods that are not being
// deleted.
func livePods(n *node, app, columns string) [][]string {
	out := n.kubectl("get", "pods", "-l", "app="+app, "--no-headers", "-o", "custom-columns="+columns+",DELETING:.metadata.deletionTimestamp")
	var pods [][]string
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == "<none>" {
			pods = append(pods, f[:len(f)-1])
		}
	}
	return pods
}

func expectDaemonNodes(t *testing.T, n *node, want ...string) {
	t.Helper()
	sort.Strings(want)
	eventually(t, 90*time.Second, func() error {
		if got := daemonNodes(n); !slices.Equal(got, want) {
			return fmt.Errorf("daemon pods on %v, want %v", got, want)
		}
		return nil
	})
}

// TestDaemonSetsWithKubectl: on three real nodes a DaemonSet runs one
// Running pod on each, rolls out a new template one node at a time, keeps
// its history for `kubectl rollout history|undo`, leaves a node whose
// NoExecute taint it does not tolerate and comes back when the taint goes,
// and stays on a cordoned node.
func TestDaemonSetsWithKubectl(t *testing.T) {
	a := startNode(t)
	b := joinNode(t, a)
	c := joinNode(t, a)
	if _, err := a.kubectlIn(fmt.Sprintf(daemonSet, demoImage), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	a.kubectl("rollout", "status", "ds/agent", "--timeout=120s")
	expectDaemonNodes(t, a, a.name, b.name, c.name)
	if out := b.kubectl("get", "ds", "agent", "--no-headers"); !strings.HasPrefix(strings.Join(strings.Fields(out), " "), "agent 3 3 3 3 3 <none>") {
		t.Fatalf("kubectl get ds agent: %q, want DESIRED CURRENT READY UP-TO-DATE AVAILABLE 3 and NODE SELECTOR <none>", out)
	}

	b.kubectl("set", "env", "ds/agent", "GREETING=two")
	b.kubectl("rollout", "status", "ds/agent", "--timeout=180s")
	greetings := func() string {
		var g []string
		for _, pod := range livePods(a, "agent", "GREETING:.spec.containers[0].env[0].value") {
			g = append(g, pod[0])
		}
		return strings.Join(g, " ")
	}
	if g := greetings(); g != "two two two" {
		t.Fatalf("greetings after the rollout: %q", g)
	}
	hist := a.kubectl("rollout", "history", "ds/agent")
	if !strings.Contains(hist, "REVISION") || !strings.Contains(hist, "\n1 ") || !strings.Contains(hist, "\n2 ") {
		t.Fatalf("kubectl rollout history ds/agent:\n%s", hist)
	}
	if out := a.kubectl("rollout", "history", "ds/agent", "--revision=1"); !strings.Contains(out, "GREETING:\tone") {
		t.Fatalf("kubectl rollout history --revision=1:\n%s", out)
	}
	if out := c.kubectl("rollout", "undo", "ds/agent"); !strings.Contains(out, "rolled back") {
		t.Fatalf("kubectl rollout undo: %q", out)
	}
	c.kubectl("rollout", "status", "ds/agent", "--timeout=180s")
	eventually(t, 60*time.Second, func() error {
		if g := greetings(); g != "one one one" {
			return fmt.Errorf("greetings after the undo: %q", g)
		}
		return nil
	})
	if hist := a.kubectl("rollout", "history", "ds/agent"); !strings.Contains(hist, "\n2 ") || !strings.Contains(hist, "\n3 ") || strings.Contains(hist, "\n1 ") {
		t.Fatalf("history after the undo, want revisions 2 and 3:\n%s", hist)
	}

	a.kubectl("cordon", c.name)
	a.kubectl("taint", "node", b.name, "maintenance=now:NoExecute")
	expectDaemonNodes(t, a, a.name, c.name)
	a.kubectl("taint", "node", b.name, "maintenance-")
	expectDaemonNodes(t, a, a.name, b.name, c.name)
	a.kubectl("rollout", "status", "ds/agent", "--timeout=120s")
}
