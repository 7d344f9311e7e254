package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// TestServerSideApply: real kubectl's `apply --server-side` creates,
// updates, reports a conflict with another field manager and takes the
// field with --force-conflicts; an object made by client-side apply moves
// to server-side apply without conflicts; `kubectl diff` shows a pending
// change and dry runs write nothing.
func TestServerSideApply(t *testing.T) {
	n := startNode(t)
	deploy := func(replicas int, image string) string {
		return fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: ssa}
spec:
  replicas: %d
  selector: {matchLabels: {app: ssa}}
  template:
    metadata: {labels: {app: ssa}}
    spec: {containers: [{name: web, image: %s}]}
`, replicas, image)
	}
	apply := func(manifest string, args ...string) (string, error) {
		return n.kubectlIn(manifest, append([]string{"apply", "-f", "-"}, args...)...)
	}
	if out, err := apply(deploy(1, demoImage), "--server-side"); err != nil || !strings.Contains(out, "serverside-applied") {
		t.Fatalf("server-side apply of a new Deployment: %v\n%s", err, out)
	}
	if out, err := apply(deploy(2, demoImage), "--server-side"); err != nil {
		t.Fatalf("server-side apply of a change: %v\n%s", err, out)
	}
	out, err := apply(deploy(3, demoImage), "--server-side", "--field-manager=ci")
	if err == nil || !strings.Contains(out, "conflict") || !strings.Contains(out, ".spec.replicas") {
		t.Fatalf("apply by another manager of a field kubectl owns: %v\n%s", err, out)
	}
	if out, err := apply(deploy(3, demoImage), "--server-side", "--field-manager=ci", "--force-conflicts"); err != nil {
		t.Fatalf("--force-conflicts: %v\n%s", err, out)
	}
	if got := n.kubectl("get", "deployment", "ssa", "-o", "jsonpath={.spec.replicas}"); got != "3" {
		t.Fatalf("replicas after the forced apply: %s", got)
	}
	// A pending change shows in kubectl diff (exit 1) and a dry run keeps it out.
	if out, err := n.kubectlIn(deploy(4, demoImage), "diff", "--server-side", "--field-manager=ci", "-f", "-"); err == nil || !strings.Contains(out, "replicas: 4") {
		t.Fatalf("kubectl diff: %v\n%s", err, out)
	}
	if _, err := apply(deploy(4, demoImage), "--server-side", "--field-manager=ci", "--dry-run=server"); err != nil {
		t.Fatal(err)
	}
	if got := n.kubectl("get", "deployment", "ssa", "-o", "jsonpath={.spec.replicas}"); got != "3" {
		t.Fatalf("a dry run changed replicas to %s", got)
	}
	if out := n.kubectl("get", "deployment", "ssa", "-o", "yaml", "--show-managed-fields"); !strings.Contains(out, "manager: ci") || !strings.Contains(out, "manager: kubectl") {
		t.Fatalf("managedFields:\n%s", out)
	}

	// Client-side apply first, then server-side: kubectl's last-applied
	// configuration is taken over without a conflict.
	csa := strings.ReplaceAll(deploy(1, demoImage), "name: ssa", "name: csa")
	if out, err := apply(csa); err != nil {
		t.Fatalf("client-side apply: %v\n%s", err, out)
	}
	if out, err := apply(strings.ReplaceAll(csa, "replicas: 1", "replicas: 2"), "--server-side"); err != nil {
		t.Fatalf("server-side apply after client-side apply: %v\n%s", err, out)
	}
}
