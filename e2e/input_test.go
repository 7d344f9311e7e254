package e2e

import (
	"strings"
	"testing"
)

// TestMalformedManifests checks that bad input gets a 4xx that names the
// problem, and that nothing is stored.
func TestMalformedManifests(t *testing.T) {
	n := startNode(t)
	tests := []struct {
		name     string
		manifest string
		want     []string
	}{
		{"negative replicas and bad name", `apiVersion: apps/v1
kind: Deployment
metadata: {name: Bad_Name}
spec:
  replicas: -1
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: a}}
    spec: {containers: [{name: c, image: i}]}
`, []string{"is invalid", "metadata.name", "spec.replicas: Invalid value: -1"}},
		{"selector does not match", `apiVersion: apps/v1
kind: Deployment
metadata: {name: mismatch}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: b}}
    spec: {containers: [{name: c, image: i}]}
`, []string{"spec.template.metadata.labels", "does not match"}},
		{"unknown field", `apiVersion: apps/v1
kind: Deployment
metadata: {name: unknown}
spec:
  replicaz: 2
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: a}}
    spec: {containers: [{name: c, image: i}]}
`, []string{`unknown field "spec.replicaz"`}},
		{"pod without image", `apiVersion: v1
kind: Pod
metadata: {name: noimage}
spec: {containers: [{name: c}]}
`, []string{"spec.containers[0].image: Required value"}},
		{"unknown kind", `apiVersion: v1
kind: Gadget
metadata: {name: g}
`, []string{"Gadget"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := n.kubectlIn(tt.manifest, "apply", "-f", "-")
			if err == nil {
				t.Fatalf("accepted:\n%s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if out := n.kubectl("get", "deployments,pods", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Fatalf("rejected objects were stored: %s", out)
	}
	// A missing image shows a clear waiting reason instead of a retry storm.
	n.kubectl("run", "missing", "--image=localhost/does-not-exist:1", "--image-pull-policy=Never")
	eventually(t, 60e9, func() error {
		out := n.kubectl("get", "pod", "missing", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}")
		if out != "ErrImageNeverPull" {
			return errString("waiting reason " + out)
		}
		return nil
	})
}

type errString string

func (e errString) Error() string { return string(e) }
