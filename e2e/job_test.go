package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestJobsWithKubectl: `kubectl create job` runs to completion on real
// Podman, `kubectl logs job/NAME` shows its output, and a Job whose pod
// fails past its backoffLimit is Failed.
func TestJobsWithKubectl(t *testing.T) {
	n := startNode(t)
	n.kubectl("create", "job", "hello", "--image="+demoImage, "--", "/mycel-demo", "exit", "0", "hello from a job")
	n.kubectl("create", "job", "doomed", "--image="+demoImage, "--", "/mycel-demo", "exit", "3")
	n.kubectl("patch", "job", "doomed", "--type=merge", "-p", `{"spec":{"backoffLimit":0}}`)
	eventually(t, 90*time.Second, func() error {
		_, err := n.kubectlErr("wait", "--for=condition=complete", "job/hello", "--timeout=5s")
		return err
	})
	if out := n.kubectl("logs", "job/hello"); strings.TrimSpace(out) != "hello from a job" {
		t.Fatalf("kubectl logs job/hello: %q", out)
	}
	if out := n.kubectl("get", "job", "hello", "--no-headers"); !strings.Contains(out, "Complete") || !strings.Contains(out, "1/1") {
		t.Fatalf("kubectl get job hello: %q", out)
	}
	eventually(t, 90*time.Second, func() error {
		_, err := n.kubectlErr("wait", "--for=condition=failed", "job/doomed", "--timeout=5s")
		return err
	})
}
