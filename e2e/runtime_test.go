package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCrashingContainerRestartsWithBackoff runs a container that exits:
// Podman's exit code reaches the pod status, the container is restarted
// after the backoff, and the previous run's logs stay readable.
func TestCrashingContainerRestartsWithBackoff(t *testing.T) {
	n := startNode(t)
	n.kubectl("run", "crash", "--image="+demoImage, "--image-pull-policy=Never", "--", "-exit-after=300ms", "-exit-code=3")
	eventually(t, 90*time.Second, func() error {
		out := n.kubectl("get", "pod", "crash", "-o", "jsonpath={.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].lastState.terminated.exitCode}")
		if out != "1 3" {
			return fmt.Errorf("restartCount and last exit code: %q", out)
		}
		return nil
	})
	prev := n.kubectl("logs", "crash", "--previous")
	if !strings.Contains(prev, "exiting with code 3") {
		t.Fatalf("logs --previous: %q", prev)
	}
	reason := n.kubectl("get", "pod", "crash", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}{.status.containerStatuses[0].state.running.startedAt}")
	if reason == "" {
		t.Fatal("container neither waiting nor running")
	}
	if desc := n.kubectl("describe", "pod", "crash"); !strings.Contains(desc, "Events:") || !strings.Contains(desc, "Started container crash") {
		t.Fatalf("describe lacks events:\n%s", desc)
	}
}

// TestLogsFollow streams logs while the container writes them.
func TestLogsFollow(t *testing.T) {
	n := startNode(t)
	n.kubectl("run", "web", "--image="+demoImage, "--image-pull-policy=Never")
	n.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=60s")
	ip := n.kubectl("get", "pod", "web", "-o", "jsonpath={.status.podIP}")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", n.kubeconfig, "logs", "-f", "web")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || !strings.Contains(lines.Text(), "mycel-demo starting") {
		t.Fatalf("first followed line: %q", lines.Text())
	}
	// A request made now shows up on the open stream.
	resp, err := http.Get("http://" + ip + ":8080/followed")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for lines.Scan() {
		if strings.Contains(lines.Text(), "GET /followed") {
			return
		}
	}
	t.Fatalf("request never appeared in kubectl logs -f: %v", lines.Err())
}

// TestPodmanGoesAwayAndReturns runs a node on its own Podman service, stops
// the service, and checks that the node says so, the API keeps serving and
// nothing is lost; when Podman returns, the pods are reconciled.
func TestPodmanGoesAwayAndReturns(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "podman.sock")
	startService := func() *exec.Cmd {
		svc := exec.Command("podman", "system", "service", "--time=0", "unix://"+sock)
		svc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := svc.Start(); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, func() error {
			_, err := os.Stat(sock)
			return err
		})
		return svc
	}
	svc := startService()
	t.Cleanup(func() { syscall.Kill(-svc.Process.Pid, syscall.SIGKILL); svc.Wait() })

	n := startNode(t, func(n *node) { n.socket = sock })
	if out, err := n.kubectlIn(deployment("steady", 1, "v1"), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	rollout(n, "steady")

	syscall.Kill(-svc.Process.Pid, syscall.SIGTERM)
	svc.Wait()
	os.Remove(sock)
	n.kubectl("wait", "--for=condition=Ready=false", "node/"+n.name, "--timeout=60s")
	msg := n.kubectl("get", "node", n.name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].reason}`)
	if msg != "ContainerRuntimeUnavailable" {
		t.Fatalf("Ready reason %q, want ContainerRuntimeUnavailable", msg)
	}
	// The API keeps serving and accepting work while Podman is away.
	n.kubectl("scale", "deployment/steady", "--replicas=2")
	if out := n.kubectl("get", "deployment", "steady", "-o", "jsonpath={.spec.replicas}"); out != "2" {
		t.Fatalf("replicas %q", out)
	}

	svc = startService()
	n.kubectl("wait", "--for=condition=Ready", "node/"+n.name, "--timeout=60s")
	rollout(n, "steady")
	expectRunning(t, n, "steady", 2)
}

// TestMetrics checks that /metrics reports what operators rely on.
func TestMetrics(t *testing.T) {
	n := startNode(t)
	n.kubectl("run", "m", "--image="+demoImage, "--image-pull-policy=Never")
	n.kubectl("wait", "--for=condition=Ready", "pod/m", "--timeout=60s")
	n.kubectlErr("run", "bad", "--image=x", "--privileged")
	metrics := n.kubectl("get", "--raw", "/metrics")
	for _, want := range []string{
		`mycel_apiserver_requests_total{code="201",resource="pods",verb="create"}`,
		`mycel_apiserver_request_duration_seconds_bucket{resource="pods",verb="get"`,
		`mycel_pods{phase="Running"} 1`,
		`mycel_runtime_operation_duration_seconds_count{operation="create",result="ok"}`,
		`mycel_admission_decisions_total{decision="deny",operation="CREATE",resource="pods"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestTwoFabricsOnOneMachine: two fabrics of their own trust domains share
// one Podman, with nodes of the same name; each keeps its own pod running
// and removes none of the other's containers (each adopts only containers
// of its own trust domain and peer).
func TestTwoFabricsOnOneMachine(t *testing.T) {
	name := "e2e-twin-" + randomSuffix()
	one := startNode(t, func(n *node) { n.name = name })
	two := startNode(t, func(n *node) { n.name = name })
	for _, n := range []*node{one, two} {
		n.kubectl("run", "web", "--image="+demoImage, "--image-pull-policy=Never")
		n.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=60s")
	}
	ids := func(n *node) string {
		return n.kubectl("get", "pod", "web", "-o", "jsonpath={.metadata.uid} {.status.containerStatuses[0].containerID}")
	}
	before := []string{ids(one), ids(two)}
	// Both agents resync every second; a few rounds would have removed the
	// other fabric's container as an orphan.
	one.stop()
	one.start()
	for i, n := range []*node{one, two} {
		n.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=60s")
		if got := ids(n); got != before[i] {
			t.Errorf("fabric %d: pod and container %q, were %q", i+1, got, before[i])
		}
	}
	if got := len(one.containers("running")); got != 2 {
		t.Errorf("%d running containers labelled with node %s, want 2 (one per fabric)", got, name)
	}
}
