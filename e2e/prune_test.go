package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func configMapDoc(name, value string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", namespace: default}\ndata: {v: " + value + "}\n"
}

// TestApplyPrune: `kubectl apply --prune` removes what a manifest no
// longer has, both with an ApplySet (KUBECTL_APPLYSET=true, its parent a
// Secret) and with the older label selector and an allowlist.
func TestApplyPrune(t *testing.T) {
	a := startNode(t)
	dir := t.TempDir()
	write := func(name, doc string) {
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	applyset := func(args ...string) string {
		cmd := exec.Command("kubectl", append([]string{"--kubeconfig", a.kubeconfig, "apply", "-n", "default", "--prune", "--applyset=shop", "-f", dir}, args...)...)
		cmd.Env = append(os.Environ(), "KUBECTL_APPLYSET=true")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl apply --prune --applyset: %v\n%s", err, out)
		}
		return string(out)
	}
	write("one", configMapDoc("one", "a"))
	write("two", configMapDoc("two", "b"))
	applyset()
	if got := a.kubectl("get", "cm", "one", "two", "-o", "name"); got != "configmap/one\nconfigmap/two\n" {
		t.Fatalf("after the first apply: %q", got)
	}
	if id := a.kubectl("get", "secret", "shop", "-o", "jsonpath={.metadata.labels.applyset\\.kubernetes\\.io/id}"); id == "" {
		t.Fatal("the ApplySet's parent Secret has no applyset.kubernetes.io/id label")
	}
	os.Remove(filepath.Join(dir, "two.yaml"))
	if out := applyset(); !strings.Contains(out, "configmap/two pruned") {
		t.Fatalf("second apply did not prune two:\n%s", out)
	}
	if _, err := a.kubectlErr("get", "cm", "two"); err == nil {
		t.Fatal("configmap two is still there after it was pruned")
	}

	// The label-selector form, with an allowlist: kubectl's default one
	// names kinds not served yet (Services, Endpoints, StatefulSets,
	// PersistentVolumes, ReplicationControllers, Ingresses) and fails on
	// the first it cannot map.
	labelled := func(name string) string {
		return strings.Replace(configMapDoc(name, "x"), "metadata: {", "metadata: {labels: {set: old}, ", 1)
	}
	if out, err := a.kubectlIn(labelled("three")+"---\n"+labelled("four"), "apply", "--prune", "-l", "set=old", "--prune-allowlist=core/v1/ConfigMap", "-f", "-"); err != nil {
		t.Fatalf("apply --prune -l: %v\n%s", err, out)
	}
	out, err := a.kubectlIn(labelled("three"), "apply", "--prune", "-l", "set=old", "--prune-allowlist=core/v1/ConfigMap", "-f", "-")
	if err != nil || !strings.Contains(out, "configmap/four pruned") {
		t.Fatalf("apply --prune -l: %v\n%s", err, out)
	}
}
