package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestThreeNodeFabric: two nodes join the first with tokens; every node
// lists all three Ready; a Deployment applied on one node runs on real
// Podman containers across the nodes and its rollout is seen from another;
// kubectl logs of any pod answers from any node; a node killed with
// SIGKILL turns NotReady on the others.
func TestThreeNodeFabric(t *testing.T) {
	a := startNode(t)
	b, c := joinNode(t, a), joinNode(t, a)
	all := []*node{a, b, c}
	for _, n := range all {
		// kubectl wait fails at once on an object not yet replicated here.
		eventually(t, 60*time.Second, func() error {
			_, err := n.kubectlErr("wait", "--for=condition=Ready", "node/"+a.name, "node/"+b.name, "node/"+c.name, "--timeout=30s")
			return err
		})
	}

	if out, err := b.kubectlIn(deployment("spread", 6, "v1"), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply on %s: %v\n%s", b.name, err, out)
	}
	// Another node sees the Deployment once it has replicated there.
	eventually(t, 30*time.Second, func() error {
		_, err := c.kubectlErr("get", "deployment/spread")
		return err
	})
	rollout(c, "spread")
	eventually(t, 90*time.Second, func() error {
		total := 0
		for _, n := range all {
			got := len(running(n, "spread"))
			if got == 0 {
				return fmt.Errorf("no running container of spread on %s", n.name)
			}
			total += got
		}
		if total != 6 {
			return fmt.Errorf("%d running containers of spread, want 6", total)
		}
		return nil
	})
	// Every node converges on the same six Running pods (while ownership
	// settles, a second owner may briefly have placed extras).
	for _, n := range all {
		eventually(t, 60*time.Second, func() error {
			pods := n.kubectl("get", "pods", "-l", "app=spread", "--no-headers")
			if strings.Count(pods, "Running") != 6 || strings.Count(strings.TrimSpace(pods), "\n") != 5 {
				return fmt.Errorf("%s lists:\n%s", n.name, pods)
			}
			return nil
		})
	}

	// Each pod's logs come through a's API, wherever the pod runs.
	for _, line := range strings.Split(strings.TrimSpace(a.kubectl("get", "pods", "-l", "app=spread", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{"\n"}{end}`)), "\n") {
		name, on, _ := strings.Cut(line, " ")
		if logs := a.kubectl("logs", name); !strings.Contains(logs, "mycel-demo starting") {
			t.Errorf("kubectl logs %s (on %s) through %s: %q", name, on, a.name, logs)
		}
	}

	c.kill9()
	for _, n := range []*node{a, b} {
		n.kubectl("wait", "--for=condition=Ready=Unknown", "node/"+c.name, "--timeout=30s")
	}
	out, err := exec.Command(mycelBin, "status", "--kubeconfig", a.kubeconfig).CombinedOutput()
	if err != nil || !strings.Contains(string(out), c.name) || !strings.Contains(string(out), "Dead") {
		t.Errorf("mycel status on %s after killing %s: %v\n%s", a.name, c.name, err, out)
	}
}
