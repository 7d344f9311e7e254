package e2e

import (
	"strings"
	"testing"
)

// TestDeleteCascade: `kubectl delete --cascade=orphan` of a Deployment
// leaves its ReplicaSet and pods running; `--cascade=foreground` of that
// ReplicaSet returns only once its pods are gone; a finalizer holds an
// object until it is removed.
func TestDeleteCascade(t *testing.T) {
	a := startNode(t)
	if _, err := a.kubectlIn(deployment("keep", 2, "kept"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	rollout(a, "keep")
	a.kubectl("delete", "deployment", "keep", "--cascade=orphan", "--timeout=60s")
	rs := strings.TrimSpace(a.kubectl("get", "rs", "-l", "app=keep", "-o", "name"))
	if rs == "" || strings.Contains(rs, "\n") {
		t.Fatalf("ReplicaSets after an orphan delete: %q, want one", rs)
	}
	if owners := a.kubectl("get", rs, "-o", "jsonpath={.metadata.ownerReferences}"); owners != "" {
		t.Fatalf("orphaned %s still has owners %s", rs, owners)
	}
	expectRunning(t, a, "keep", 2)

	a.kubectl("delete", rs, "--cascade=foreground", "--timeout=120s")
	if pods := strings.TrimSpace(a.kubectl("get", "pods", "-l", "app=keep", "-o", "name")); pods != "" {
		t.Fatalf("pods left after a foreground delete of their ReplicaSet returned: %s", pods)
	}

	a.kubectl("create", "configmap", "held")
	a.kubectl("patch", "configmap", "held", "--type=merge", "-p", `{"metadata":{"finalizers":["example.com/hold"]}}`)
	a.kubectl("delete", "configmap", "held", "--wait=false")
	if ts := a.kubectl("get", "configmap", "held", "-o", "jsonpath={.metadata.deletionTimestamp}"); ts == "" {
		t.Fatal("a ConfigMap with a finalizer was removed at once")
	}
	a.kubectl("patch", "configmap", "held", "--type=json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`)
	a.kubectl("wait", "--for=delete", "configmap/held", "--timeout=30s")
}
