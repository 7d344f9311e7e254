package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestProbesInitContainersAndSharedNetwork, with real Podman: an init
// container runs to completion before the app containers, which share the
// pod's network (one container's exec readiness probe reaches the other on
// localhost) and its emptyDir; readiness probes make the pod Ready; a
// failing liveness probe restarts its container; a container that ignores
// SIGTERM is killed at the end of a short grace period.
func TestProbesInitContainersAndSharedNetwork(t *testing.T) {
	n := startNode(t)
	manifest := fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  initContainers:
  - name: prepare
    image: %[1]s
    args: [write, /work/ready, initialized]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: web
    image: %[1]s
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
    livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
  - name: side
    image: %[1]s
    args: [watch, /work/ready]
    volumeMounts: [{name: work, mountPath: /work}]
    readinessProbe: {exec: {command: [/mycel-demo, get, "http://localhost:8080/"]}, periodSeconds: 1}
  volumes: [{name: work, emptyDir: {}}]
---
apiVersion: v1
kind: Pod
metadata: {name: unhealthy}
spec:
  containers:
  - name: app
    image: %[1]s
    livenessProbe: {exec: {command: [/mycel-demo, "false"]}, periodSeconds: 1, failureThreshold: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - {name: app, image: %[1]s, args: [sleep, "3600"]}
`, demoImage)
	if out, err := n.kubectlIn(manifest, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	eventually(t, 90*time.Second, func() error {
		_, err := n.kubectlErr("wait", "--for=condition=Ready", "pod/probed", "--timeout=5s")
		return err
	})
	if out := n.kubectl("get", "pod", "probed", "-o", "jsonpath={.status.initContainerStatuses[0].state.terminated.reason} {.status.containerStatuses[*].ready}"); out != "Completed true true" {
		t.Fatalf("init and container statuses: %q", out)
	}
	if out := n.kubectl("logs", "probed", "-c", "side"); !strings.Contains(out, "/work/ready: initialized") {
		t.Fatalf("the init container's file is not in the shared emptyDir: %q", out)
	}
	eventually(t, 60*time.Second, func() error {
		out := n.kubectl("get", "pod", "unhealthy", "-o", "jsonpath={.status.containerStatuses[0].restartCount}")
		if out == "" || out == "0" {
			return fmt.Errorf("restartCount %q after failing liveness probes", out)
		}
		return nil
	})
	if out := n.kubectl("get", "events", "--field-selector", "involvedObject.name=unhealthy"); !strings.Contains(out, "Liveness probe failed") {
		t.Fatalf("no Unhealthy event:\n%s", out)
	}
	eventually(t, 60*time.Second, func() error {
		out, err := n.kubectlErr("get", "pod", "stubborn", "-o", "jsonpath={.status.phase}")
		if err != nil || out != "Running" {
			return fmt.Errorf("stubborn is %q (%v)", out, err)
		}
		return nil
	})
	// It ignores SIGTERM (PID 1 without a handler): gone once the 2 s grace
	// period is over, well before the 30 s default.
	n.kubectl("delete", "pod", "stubborn", "--wait=false")
	eventually(t, 20*time.Second, func() error {
		if _, err := n.kubectlErr("get", "pod", "stubborn"); err == nil {
			return fmt.Errorf("pod stubborn still there")
		}
		return nil
	})
}
