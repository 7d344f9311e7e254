package e2e

import (
	"strings"
	"testing"
)

// TestExplainEveryResource: `kubectl explain` describes every resource
// `kubectl api-resources` lists — the object layer's, the reviews and
// metrics.k8s.io — from the served OpenAPI v3 documents.
func TestExplainEveryResource(t *testing.T) {
	a := startNode(t)
	rows := strings.Split(strings.TrimSpace(a.kubectl("api-resources", "--no-headers")), "\n")
	if len(rows) < 20 {
		t.Fatalf("kubectl api-resources = %q, want every served resource", rows)
	}
	for _, row := range rows {
		// NAME [SHORTNAMES] APIVERSION NAMESPACED KIND
		f := strings.Fields(row)
		name, version := f[0], f[len(f)-3]
		out, err := a.kubectlErr("explain", name, "--api-version="+version)
		if err != nil || !strings.Contains(out, "KIND:") || !strings.Contains(out, "FIELDS:") {
			t.Errorf("kubectl explain %s --api-version=%s: %v\n%s", name, version, err, out)
		}
	}
}
