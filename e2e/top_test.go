package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

const busyDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: busy
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels: {app: busy}
  template:
    metadata:
      labels: {app: busy}
    spec:
      containers:
      - name: spin
        image: %s
        args: ["spin", "0.2"]
        resources:
          requests: {cpu: 20m, memory: 16Mi}
`

// topRows are the lines of `kubectl top pods|nodes --no-headers`: name, CPU
// in millicores, memory in MiB.
func topRows(t *testing.T, out string) map[string][2]int {
	t.Helper()
	rows := map[string][2]int{}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		memCol := 2 // pods: NAME CPU MEMORY; nodes: NAME CPU CPU% MEMORY MEMORY%
		if len(f) == 5 {
			memCol = 3
		}
		cpu, err1 := strconv.Atoi(strings.TrimSuffix(f[1], "m"))
		mem, err2 := strconv.Atoi(strings.TrimSuffix(f[memCol], "Mi"))
		if err1 != nil || err2 != nil {
			t.Fatalf("kubectl top line %q: %v %v", line, err1, err2)
		}
		rows[f[0]] = [2]int{cpu, mem}
	}
	return rows
}

// TestTopAndAutoscaling: `kubectl top pods|nodes` through any node report
// the Podman-measured usage of pods on every node, and a
// HorizontalPodAutoscaler made by `kubectl autoscale` scales a busy
// Deployment up to its maximum on that usage.
func TestTopAndAutoscaling(t *testing.T) {
	a := startNode(t)
	b := joinNode(t, a)
	if _, err := a.kubectlIn(fmt.Sprintf(busyDeployment, demoImage), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	a.kubectl("rollout", "status", "deploy/busy", "--timeout=120s")
	pod := strings.TrimPrefix(strings.TrimSpace(a.kubectl("get", "pods", "-l", "app=busy", "-o", "name")), "pod/")
	// Both nodes' APIs answer for the pod wherever it runs: it spins a
	// fifth of a CPU and holds a little memory.
	for _, n := range []*node{a, b} {
		eventually(t, 60*time.Second, func() error {
			out, err := n.kubectlErr("top", "pods", "-l", "app=busy", "--no-headers")
			if err != nil {
				return fmt.Errorf("kubectl top pods: %v: %s", err, out)
			}
			row, ok := topRows(t, out)[pod]
			if !ok || row[0] < 50 || row[1] == 0 {
				return fmt.Errorf("kubectl top pods = %q, want %s using ≥50m CPU and some memory", out, pod)
			}
			return nil
		})
	}
	out := b.kubectl("top", "pods", "--containers", "--no-headers")
	if !strings.Contains(out, pod) || !strings.Contains(out, "spin") {
		t.Fatalf("kubectl top pods --containers = %q, want %s's container spin", out, pod)
	}
	nodes := topRows(t, a.kubectl("top", "nodes", "--no-headers"))
	for _, n := range []*node{a, b} {
		if row, ok := nodes[n.name]; !ok || row[1] == 0 {
			t.Fatalf("kubectl top nodes = %v, want %s with its memory", nodes, n.name)
		}
	}
	if out := b.kubectl("explain", "podmetrics.containers.usage"); !strings.Contains(out, "KIND:") || !strings.Contains(out, "PodMetrics") {
		t.Fatalf("kubectl explain podmetrics.containers.usage = %q", out)
	}
	// The pod uses ~200m of its 20m request: far above 50%, so the
	// autoscaler goes to its maximum at its first evaluation.
	if out, err := b.kubectlErr("autoscale", "deployment", "busy", "--min=1", "--max=3", "--cpu-percent=50"); err != nil {
		t.Fatalf("kubectl autoscale: %v: %s", err, out)
	}
	eventually(t, 90*time.Second, func() error {
		if got := a.kubectl("get", "deploy", "busy", "-o", "jsonpath={.spec.replicas}"); got != "3" {
			return fmt.Errorf("busy has %s replicas, want 3", got)
		}
		return nil
	})
	a.kubectl("rollout", "status", "deploy/busy", "--timeout=120s")
	eventually(t, 60*time.Second, func() error {
		out := b.kubectl("get", "hpa", "busy", "--no-headers")
		f := strings.Fields(out)
		if len(f) < 7 || f[1] != "Deployment/busy" || !strings.HasPrefix(f[2]+f[3], "cpu:") || !strings.HasSuffix(f[3], "%/50%") || f[len(f)-2] != "3" {
			return fmt.Errorf("kubectl get hpa = %q, want Deployment/busy at cpu: N%%/50%% with 3 replicas", out)
		}
		return nil
	})
	if out := a.kubectl("describe", "hpa", "busy"); !strings.Contains(out, "SuccessfulRescale") || !strings.Contains(out, "ValidMetricFound") {
		t.Fatalf("kubectl describe hpa lacks the rescale event or the ValidMetricFound condition:\n%s", out)
	}
	a.kubectl("delete", "deploy", "busy")
}
