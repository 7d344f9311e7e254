package agent

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mycelfabric/mycel/workloadplane/objects"
	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// fakeProber answers probes and hooks by the path of their httpGet (or the
// first word of their command) and records every call.
type fakeProber struct {
	mu    sync.Mutex
	ok    map[string]bool
	calls []string
}

func (f *fakeProber) Probe(_ context.Context, t ProbeTarget, h *corev1.ProbeHandler) (bool, string) {
	what := ""
	switch {
	case h.HTTPGet != nil:
		what = h.HTTPGet.Path
	case h.Exec != nil:
		what = h.Exec.Command[0]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, t.Container.Name+" "+what+" @"+t.IP)
	if f.ok[what] {
		return true, ""
	}
	return false, "HTTP probe failed with statuscode: 503"
}

func (f *fakeProber) set(what string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ok[what] = ok
}

func (f *fakeProber) called(what string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.Contains(c, " "+what+" ") {
			n++
		}
	}
	return n
}

func withProber(h *harness) *fakeProber {
	f := &fakeProber{ok: map[string]bool{}}
	a, err := New(Config{NodeName: "node-1", NodeIP: "192.0.2.1", TrustDomain: "fabric.test", PeerID: "peer-1", Client: h.objs, Runtime: h.fake,
		VolumeDir: h.volumeDir, MemoryDir: h.memoryDir, Prober: f, Now: func() time.Time { return h.now }})
	if err != nil {
		h.t.Fatal(err)
	}
	h.agent = a
	return f
}

// step advances the clock and syncs as the agent would on the kicks of
// probe results and kills: sync, wait for the probes it started, sync
// (acting on their results), wait for the kills, sync (reporting them).
func (h *harness) step(d time.Duration) {
	h.now = h.now.Add(d)
	h.sync()
	h.agent.probing.Wait()
	h.sync()
	h.agent.stopping.Wait()
	h.sync()
}

func probe(path string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
		PeriodSeconds: period, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: failures}
}

func (h *harness) probedPod(name string, c corev1.Container) *corev1.Pod {
	h.t.Helper()
	c.Name, c.Image, c.ImagePullPolicy = "app", image, corev1.PullNever
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{c}}}
	if err := h.objs.Create(context.Background(), p); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func TestReadinessDrivesReady(t *testing.T) {
	h := newHarness(t)
	pr := withProber(h)
	h.probedPod("web", corev1.Container{ReadinessProbe: probe("/ready", 1, 1)})
	h.step(0)
	p := h.get("web")
	if p.Status.Phase != corev1.PodRunning || objects.PodReady(p) || p.Status.ContainerStatuses[0].Ready {
		t.Fatalf("running pod whose readiness probe fails: phase %s, ready %v", p.Status.Phase, objects.PodReady(p))
	}
	if n := pr.called("/ready"); n != 1 {
		t.Fatalf("readiness probed %d times in the first period, want 1", n)
	}
	// Probes go to the pod's IP (its sandbox's).
	if !strings.HasSuffix(pr.calls[0], "@"+p.Status.PodIP) || p.Status.PodIP == "" {
		t.Fatalf("probe %q, pod IP %q", pr.calls[0], p.Status.PodIP)
	}
	pr.set("/ready", true)
	h.step(500 * time.Millisecond) // not due yet
	if objects.PodReady(h.get("web")) || pr.called("/ready") != 1 {
		t.Fatal("probed again before periodSeconds")
	}
	h.step(time.Second)
	if p := h.get("web"); !objects.PodReady(p) || !p.Status.ContainerStatuses[0].Ready {
		t.Fatal("not Ready after the readiness probe succeeded")
	}
	pr.set("/ready", false)
	h.step(time.Second)
	if objects.PodReady(h.get("web")) {
		t.Fatal("still Ready after the readiness probe failed")
	}
	if len(h.containers(h.get("web"))) != 1 {
		t.Fatal("a failed readiness probe restarted the container")
	}
}

func TestLivenessFailureRestartsTheContainer(t *testing.T) {
	h := newHarness(t)
	pr := withProber(h)
	h.probedPod("live", corev1.Container{LivenessProbe: probe("/healthz", 1, 2),
		Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"drain"}}}}})
	pr.set("drain", true)
	h.step(0)
	if p := h.get("live"); !objects.PodReady(p) {
		t.Fatal("a container with only a liveness probe is ready once running")
	}
	h.step(time.Second) // the second failure: killed
	cs := h.containers(h.get("live"))
	if len(cs) != 1 || cs[0].State != rt.StateExited {
		t.Fatalf("after two liveness failures: %+v, want the container stopped", cs)
	}
	if pr.called("drain") != 1 {
		t.Fatal("the preStop hook did not run before the kill")
	}
	if st := h.get("live").Status.ContainerStatuses[0]; st.State.Waiting == nil || st.State.Waiting.Reason != "CrashLoopBackOff" {
		t.Fatalf("killed container state %+v, want CrashLoopBackOff", st.State)
	}
	pr.set("/healthz", true)
	h.step(h.agent.backoff(1))
	p := h.get("live")
	if st := p.Status.ContainerStatuses[0]; st.RestartCount != 1 || st.State.Running == nil {
		t.Fatalf("after the backoff: %+v, want restarted once and running", st)
	}
	var events corev1.EventList
	h.objs.List(context.Background(), &events, "default", nil)
	var reasons []string
	for _, e := range events.Items {
		reasons = append(reasons, e.Reason)
	}
	if r := strings.Join(reasons, ","); !strings.Contains(r, "Unhealthy") || !strings.Contains(r, "Killing") {
		t.Fatalf("events %s, want Unhealthy and Killing", r)
	}
}

func TestStartupProbeHoldsTheOthers(t *testing.T) {
	h := newHarness(t)
	pr := withProber(h)
	h.probedPod("slow", corev1.Container{StartupProbe: probe("/started", 1, 30), LivenessProbe: probe("/healthz", 1, 1), ReadinessProbe: probe("/ready", 1, 1)})
	pr.set("/ready", true)
	for range 3 {
		h.step(time.Second)
	}
	if pr.called("/healthz") != 0 || pr.called("/ready") != 0 {
		t.Fatal("liveness or readiness probed before the startup probe passed")
	}
	if st := h.get("slow").Status.ContainerStatuses[0]; *st.Started || st.Ready || len(h.containers(h.get("slow"))) != 1 {
		t.Fatalf("status %+v before startup", st)
	}
	pr.set("/started", true)
	pr.set("/healthz", true)
	h.step(time.Second)
	h.step(time.Second)
	if st := h.get("slow").Status.ContainerStatuses[0]; !*st.Started || !st.Ready {
		t.Fatalf("status %+v after startup", st)
	}
}

func TestInitContainersRunInOrderFirst(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	init := func(name string) corev1.Container {
		return corev1.Container{Name: name, Image: image, ImagePullPolicy: corev1.PullNever}
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "inits", Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: "node-1", InitContainers: []corev1.Container{init("migrate"), init("seed")},
			Containers: []corev1.Container{{Name: "app", Image: image, ImagePullPolicy: corev1.PullNever}}}}
	if err := h.objs.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	byName := func() map[string][]rt.Container { return attempts(h.containers(p)) }
	h.sync()
	if b := byName(); len(b["migrate"]) != 1 || len(b["seed"]) != 0 || len(b["app"]) != 0 {
		t.Fatalf("first sync started %v, want only the first init container", b)
	}
	got := h.get("inits")
	if got.Status.Phase != corev1.PodPending || got.Status.ContainerStatuses[0].State.Waiting.Reason != "PodInitializing" {
		t.Fatalf("status while initializing: %+v", got.Status)
	}
	cells := tableCells(t, h, got)
	if cells[2] != "Init:0/2" {
		t.Fatalf("kubectl get shows %q, want Init:0/2", cells[2])
	}
	// A failure is retried (restartPolicy Always): after the backoff.
	h.fake.Exit(byName()["migrate"][0].ID, 1)
	h.sync()
	if got := h.get("inits"); tableCells(t, h, got)[2] != "Init:CrashLoopBackOff" {
		t.Fatalf("after a failed init container: %q", tableCells(t, h, got)[2])
	}
	h.now = h.now.Add(h.agent.backoff(1))
	h.sync()
	h.fake.Exit(byName()["migrate"][1].ID, 0)
	h.sync()
	if b := byName(); len(b["seed"]) != 1 || len(b["app"]) != 0 {
		t.Fatalf("after the first init container: %v", b)
	}
	h.fake.Exit(byName()["seed"][0].ID, 0)
	h.sync()
	h.sync()
	got = h.get("inits")
	if b := byName(); len(b["app"]) != 1 || got.Status.Phase != corev1.PodRunning || !objects.PodReady(got) {
		t.Fatalf("after both init containers: %v, phase %s", b, got.Status.Phase)
	}
	if c := objects.PodCondition(got, corev1.PodInitialized); c == nil || c.Status != corev1.ConditionTrue {
		t.Fatal("Initialized is not True")
	}
	if got.Status.InitContainerStatuses[1].State.Terminated == nil {
		t.Fatal("completed init containers are not shown terminated")
	}
}

func TestFailedInitContainerFailsANeverPod(t *testing.T) {
	h := newHarness(t)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "once", Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: "node-1", RestartPolicy: corev1.RestartPolicyNever,
			InitContainers: []corev1.Container{{Name: "check", Image: image, ImagePullPolicy: corev1.PullNever}},
			Containers:     []corev1.Container{{Name: "app", Image: image, ImagePullPolicy: corev1.PullNever}}}}
	if err := h.objs.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	h.sync()
	h.fake.Exit(h.containers(p)[0].ID, 2)
	h.sync()
	h.now = h.now.Add(time.Hour)
	h.sync()
	if got := h.get("once"); got.Status.Phase != corev1.PodFailed || len(h.containers(p)) != 1 {
		t.Fatalf("phase %s with %d containers, want Failed and the app never started", got.Status.Phase, len(h.containers(p)))
	}
}

func TestPostStartHookFailureKillsTheContainer(t *testing.T) {
	h := newHarness(t)
	pr := withProber(h)
	p := h.probedPod("hooked", corev1.Container{Lifecycle: &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"warm-up"}}}}})
	h.sync()
	if pr.called("warm-up") != 1 {
		t.Fatal("postStart hook not run")
	}
	if cs := h.containers(p); len(cs) != 1 || cs[0].State != rt.StateExited {
		t.Fatalf("after a failed postStart hook: %+v, want the container stopped", cs)
	}
}

// tableCells renders a pod as `kubectl get pods` does.
func tableCells(t *testing.T, h *harness, p *corev1.Pod) []any {
	t.Helper()
	r, err := h.objs.ResourceOf(p)
	if err != nil {
		t.Fatal(err)
	}
	return r.Cells(p, h.now)
}
