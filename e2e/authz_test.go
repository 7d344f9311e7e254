package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuthorizationWithKubectl: kubectl auth whoami and can-i answer for an
// admin and for a second user as the default policy decides, a denied
// write is 403 with the rule's name, and a namespace's mycel.io/writers
// annotation grants writes.
func TestAuthorizationWithKubectl(t *testing.T) {
	n := startNode(t)
	bobKC := filepath.Join(t.TempDir(), "bob.kubeconfig")
	run(t, mycelBin, "kubeconfig", "--dir", n.caDir, "--user", "bob", "--server", "https://"+n.apiAddr, "--out", bobKC)
	bob := func(args ...string) (string, error) {
		cmd := exec.Command("kubectl", args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+bobKC)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out := n.kubectl("auth", "can-i", "create", "deployments"); strings.TrimSpace(out) != "yes" {
		t.Fatalf("admin can-i create deployments: %q", out)
	}
	// kubectl prints the policy's reason after a "no".
	if out, _ := bob("auth", "can-i", "create", "deployments"); !strings.HasPrefix(out, "no - denied by authorization policy: namespace-writers:") {
		t.Fatalf("bob can-i create deployments: %q", out)
	}
	if out, _ := bob("auth", "can-i", "list", "pods"); out != "yes" {
		t.Fatalf("bob can-i list pods: %q", out)
	}
	if out, err := bob("auth", "whoami"); err != nil || !strings.Contains(out, "bob") {
		t.Fatalf("bob whoami: %v\n%s", err, out)
	}
	if out := n.kubectl("auth", "whoami"); !strings.Contains(out, "mycel:admins") {
		t.Fatalf("admin whoami:\n%s", out)
	}
	out, err := bob("create", "configmap", "x", "--from-literal=a=b")
	if err == nil || !strings.Contains(out, "is forbidden") || !strings.Contains(out, "namespace-writers") {
		t.Fatalf("bob creates a ConfigMap: %v\n%s", err, out)
	}
	n.kubectl("annotate", "namespace", "default", "mycel.io/writers=bob")
	if out, _ := bob("auth", "can-i", "create", "configmaps"); out != "yes" {
		t.Fatalf("bob can-i after the grant: %q", out)
	}
	if out, err := bob("create", "configmap", "x", "--from-literal=a=b"); err != nil {
		t.Fatalf("bob creates a ConfigMap in a namespace he writes: %v\n%s", err, out)
	}
}
