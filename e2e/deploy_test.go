package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

func deployment(name string, replicas int, greeting string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: default
spec:
  replicas: %[2]d
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
      - name: web
        image: %[3]s
        env: [{name: GREETING, value: %[4]q}]
        resources:
          limits: {cpu: 100m, memory: 32Mi}
`, name, replicas, demoImage, greeting)
}

// running returns the names of the node's running containers of an app.
func running(n *node, app string) []string {
	var names []string
	for _, c := range n.containers("running") {
		if strings.HasPrefix(c.Labels["mycel.io/pod"], app+"-") {
			names = append(names, c.Names[0])
		}
	}
	sort.Strings(names)
	return names
}

func expectRunning(t testing.TB, n *node, app string, want int) []string {
	t.Helper()
	var got []string
	eventually(t, 90*time.Second, func() error {
		got = running(n, app)
		if len(got) != want {
			return fmt.Errorf("%d running containers of %s, want %d: %v", len(got), app, want, got)
		}
		return nil
	})
	return got
}

func rollout(n *node, name string) {
	n.kubectl("rollout", "status", "deployment/"+name, "--timeout=120s")
}

// TestDeploymentLifecycle walks a Deployment through create, scale, logs,
// rolling update and delete, checking real Podman containers at each step.
func TestDeploymentLifecycle(t *testing.T) {
	n := startNode(t)

	out, err := n.kubectlIn(deployment("web", 3, "v1"), "apply", "-f", "-")
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	rollout(n, "web")
	names := expectRunning(t, n, "web", 3)
	for _, c := range n.containers("running") {
		for _, l := range []string{"mycel.io/namespace", "mycel.io/pod", "mycel.io/node"} {
			if c.Labels[l] == "" {
				t.Errorf("container %s lacks label %s: %v", c.Names[0], l, c.Labels)
			}
		}
		if c.Labels["mycel.io/namespace"] != "default" || c.Labels["mycel.io/node"] != n.name {
			t.Errorf("container %s labels %v", c.Names[0], c.Labels)
		}
		if !strings.HasPrefix(c.Names[0], "default_web-") {
			t.Errorf("container name %q does not name the namespace and pod", c.Names[0])
		}
	}
	t.Logf("running: %v", names)

	// kubectl get shows the usual columns.
	table := n.kubectl("get", "pods", "-o", "wide")
	for _, col := range []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"} {
		if !strings.Contains(table, col) {
			t.Errorf("kubectl get pods -o wide lacks column %s:\n%s", col, table)
		}
	}
	if strings.Count(table, "Running") != 3 || !strings.Contains(table, n.name) {
		t.Errorf("want 3 Running pods on %s:\n%s", n.name, table)
	}

	n.kubectl("scale", "deployment/web", "--replicas=1")
	rollout(n, "web")
	expectRunning(t, n, "web", 1)
	n.kubectl("scale", "deployment/web", "--replicas=5")
	rollout(n, "web")
	expectRunning(t, n, "web", 5)

	logs := n.kubectl("logs", "deployment/web")
	if !strings.Contains(logs, `mycel-demo starting on :8080`) || !strings.Contains(logs, `greeting "v1"`) {
		t.Errorf("kubectl logs: %q", logs)
	}

	// Rolling update of the pod template's env.
	n.kubectl("set", "env", "deployment/web", "GREETING=v2")
	rollout(n, "web")
	expectRunning(t, n, "web", 5)
	// As in Kubernetes, a finished rollout may leave old pods Terminating;
	// every pod not being deleted must run the new template.
	pods := n.kubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}{\"\\n\"}{end}")
	live := 0
	for _, line := range strings.Split(strings.TrimSpace(pods), "\n") {
		f := strings.Fields(line)
		if len(f) != 1 {
			continue // Terminating
		}
		live++
		if l := n.kubectl("logs", f[0]); !strings.Contains(l, `greeting "v2"`) {
			t.Errorf("pod %s still runs the old template: %q", f[0], l)
		}
	}
	if live != 5 {
		t.Errorf("want 5 pods not being deleted, got %d:\n%s", live, pods)
	}
	if rs := n.kubectl("get", "rs", "-l", "app=web", "-o", "name"); len(strings.Fields(rs)) != 2 {
		t.Errorf("want the old and new ReplicaSets, got %q", rs)
	}

	n.kubectl("delete", "deployment/web", "--wait=true")
	eventually(t, 90*time.Second, func() error {
		if cs := n.containers(""); len(cs) != 0 {
			return fmt.Errorf("%d containers left after delete", len(cs))
		}
		if p := n.kubectl("get", "pods", "-l", "app=web", "-o", "name"); strings.TrimSpace(p) != "" {
			return fmt.Errorf("pods left: %s", p)
		}
		return nil
	})
}

// TestRestartReadoptsContainers kills the node with SIGKILL and restarts
// it: the same pods keep the same containers, with no duplicates.
func TestRestartReadoptsContainers(t *testing.T) {
	n := startNode(t)
	if out, err := n.kubectlIn(deployment("keep", 2, "v1"), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	rollout(n, "keep")
	before := expectRunning(t, n, "keep", 2)
	podsBefore := n.kubectl("get", "pods", "-l", "app=keep", "-o", "name")

	n.kill9()
	n.start()
	rollout(n, "keep")
	// Give the agent a full sync against the runtime: a restart count or a
	// new container would show up in the pods' status.
	n.kubectl("wait", "--for=condition=Ready", "pods", "-l", "app=keep", "--timeout=60s")
	after := running(n, "keep")
	if strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("containers changed across kill -9: before %v after %v", before, after)
	}
	if all := n.containers(""); len(all) != 2 {
		t.Fatalf("want exactly 2 containers after restart, got %d", len(all))
	}
	if podsAfter := n.kubectl("get", "pods", "-l", "app=keep", "-o", "name"); podsAfter != podsBefore {
		t.Fatalf("pods changed across restart: %q vs %q", podsBefore, podsAfter)
	}
	restarts := n.kubectl("get", "pods", "-l", "app=keep", "-o", "jsonpath={.items[*].status.containerStatuses[*].restartCount}")
	if strings.Trim(restarts, "0 ") != "" {
		t.Fatalf("restart counts %q after node restart, want all 0", restarts)
	}
}

// TestDeploymentRolloutCommands: `kubectl rollout history|undo|pause|
// resume|restart` on a Deployment behave as on Kubernetes, over the
// ReplicaSets' revision annotations.
func TestDeploymentRolloutCommands(t *testing.T) {
	n := startNode(t)
	if out, err := n.kubectlIn(deployment("web", 2, "one"), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	rollout(n, "web")
	greetings := func() string {
		var g []string
		for _, pod := range livePods(n, "web", "GREETING:.spec.containers[0].env[0].value") {
			g = append(g, pod[0])
		}
		sort.Strings(g)
		return strings.Join(g, " ")
	}
	settle := func(want string) {
		t.Helper()
		rollout(n, "web")
		eventually(t, 60*time.Second, func() error {
			if g := greetings(); g != want {
				return fmt.Errorf("greetings %q, want %q", g, want)
			}
			return nil
		})
	}
	n.kubectl("set", "env", "deployment/web", "GREETING=two")
	settle("two two")
	if h := n.kubectl("rollout", "history", "deployment/web"); !strings.Contains(h, "\n1 ") || !strings.Contains(h, "\n2 ") {
		t.Fatalf("kubectl rollout history:\n%s", h)
	}
	if h := n.kubectl("rollout", "history", "deployment/web", "--revision=1"); !strings.Contains(h, "GREETING:\tone") {
		t.Fatalf("kubectl rollout history --revision=1:\n%s", h)
	}
	if out := n.kubectl("rollout", "undo", "deployment/web"); !strings.Contains(out, "rolled back") {
		t.Fatalf("kubectl rollout undo: %q", out)
	}
	settle("one one")
	if h := n.kubectl("rollout", "history", "deployment/web"); !strings.Contains(h, "\n2 ") || !strings.Contains(h, "\n3 ") || strings.Contains(h, "\n1 ") {
		t.Fatalf("history after the undo, want revisions 2 and 3:\n%s", h)
	}

	// Paused, a template change makes no new ReplicaSet; resumed, it rolls out.
	n.kubectl("rollout", "pause", "deployment/web")
	n.kubectl("set", "env", "deployment/web", "GREETING=three")
	if out, err := n.kubectlErr("rollout", "undo", "deployment/web"); err == nil || !strings.Contains(out, "paused") {
		t.Fatalf("undo of a paused deployment: %v %q", err, out)
	}
	n.kubectl("wait", "--for=jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}=DeploymentPaused", "deployment/web", "--timeout=30s")
	if rs := n.kubectl("get", "rs", "-l", "app=web", "-o", "name"); len(strings.Fields(rs)) != 2 || greetings() != "one one" {
		t.Fatalf("paused: ReplicaSets %q, greetings %q; want 2 and the old template", rs, greetings())
	}
	n.kubectl("rollout", "resume", "deployment/web")
	settle("three three")

	before := n.kubectl("get", "pods", "-l", "app=web", "-o", "name")
	n.kubectl("rollout", "restart", "deployment/web")
	rollout(n, "web")
	eventually(t, 60*time.Second, func() error {
		for _, pod := range livePods(n, "web", "NAME:.metadata.name,RESTARTED:.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt") {
			if strings.Contains(before, pod[0]) || pod[1] == "<none>" {
				return fmt.Errorf("pod %s is from before the restart", pod[0])
			}
		}
		return nil
	})
}
