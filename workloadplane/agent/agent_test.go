package agent

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mycelfabric/mycel/securityplane/datakey"
	"github.com/mycelfabric/mycel/workloadplane/objects"
	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
	"github.com/mycelfabric/mycel/workloadplane/runtime/runtimetest"
	"github.com/mycelfabric/mycel/workloadplane/store"
)

const image = "localhost/app:1"

type harness struct {
	t     *testing.T
	now   time.Time
	objs  *objects.Objects
	fake  *runtimetest.Fake
	agent *Agent
	// volumeDir and memoryDir are the agent's volume directories.
	volumeDir, memoryDir string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, now: time.Unix(1_700_000_000, 0)}
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := func() time.Time { return h.now }
	key, err := datakey.New(h.now, h.now)
	if err != nil {
		t.Fatal(err)
	}
	h.objs = objects.New(st, objects.Config{Now: clock, Sealer: datakey.NewRing(clock, key)})
	if err := h.objs.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}); err != nil {
		t.Fatal(err)
	}
	h.fake = runtimetest.New(clock, image)
	h.agent = h.newAgent()
	return h
}

func (h *harness) newAgent() *Agent {
	if h.volumeDir == "" {
		h.volumeDir, h.memoryDir = h.t.TempDir(), h.t.TempDir()
	}
	a, err := New(Config{NodeName: "node-1", NodeIP: "192.0.2.1", TrustDomain: "fabric.test", PeerID: "peer-1", Client: h.objs, Runtime: h.fake,
		VolumeDir: h.volumeDir, MemoryDir: h.memoryDir,
		Now: func() time.Time { return h.now }})
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

func (h *harness) pod(name string, policy corev1.RestartPolicy, img string) *corev1.Pod {
	h.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: "node-1", RestartPolicy: policy, Containers: []corev1.Container{{
			Name: "app", Image: img, ImagePullPolicy: corev1.PullNever, Command: []string{"/app"}, Args: []string{"-v"},
			Env:   []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
			Ports: []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}},
		}}},
	}
	if err := h.objs.Create(context.Background(), p); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *harness) sync() { h.agent.Sync(context.Background()) }

func (h *harness) get(name string) *corev1.Pod {
	h.t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	if err := h.objs.Get(context.Background(), p); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *harness) containers(p *corev1.Pod) []rt.Container {
	cs, _ := h.fake.List(context.Background(), map[string]string{rt.LabelPodUID: string(p.UID)})
	return cs
}

func TestRunsPodAndReportsStatus(t *testing.T) {
	h := newHarness(t)
	p := h.pod("web", corev1.RestartPolicyAlways, image)
	h.sync()
	cs := h.containers(p)
	if len(cs) != 1 || cs[0].State != rt.StateRunning {
		t.Fatalf("containers %+v, want one running", cs)
	}
	spec := h.fake.Spec(cs[0].ID)
	if spec.Labels[rt.LabelNamespace] != "default" || spec.Labels[rt.LabelPod] != "web" || spec.Labels[rt.LabelNode] != "node-1" {
		t.Errorf("labels %v", spec.Labels)
	}
	if spec.Env["A"] != "1" || spec.Env["POD"] != "web" || spec.Command[0] != "/app" || spec.Args[0] != "-v" || spec.Sandbox == "" {
		t.Errorf("spec %+v", spec)
	}
	// The pod's sandbox holds its network and publishes its host ports.
	if sb := h.fake.SandboxSpec(spec.Sandbox); len(sb.Ports) != 1 || sb.Ports[0].HostPort != 8080 || sb.Hostname != "web" {
		t.Errorf("sandbox %+v, want hostname web publishing 8080", sb)
	}
	got := h.get("web")
	if got.Status.Phase != corev1.PodRunning || !got.Status.ContainerStatuses[0].Ready || got.Status.PodIP == "" || got.Status.HostIP != "192.0.2.1" {
		t.Fatalf("status %+v", got.Status)
	}
	// A second sync changes nothing: no duplicate container, no status write.
	rv := got.ResourceVersion
	h.sync()
	if len(h.containers(p)) != 1 || h.get("web").ResourceVersion != rv {
		t.Fatal("idle sync created a container or rewrote the status")
	}
}

func TestRestartWithBackoff(t *testing.T) {
	h := newHarness(t)
	p := h.pod("crash", corev1.RestartPolicyAlways, image)
	h.sync()
	first := h.containers(p)[0]
	h.fake.Exit(first.ID, 2)
	h.sync()
	st := h.get("crash").Status.ContainerStatuses[0]
	if st.State.Waiting == nil || st.State.Waiting.Reason != "CrashLoopBackOff" || st.LastTerminationState.Terminated.ExitCode != 2 {
		t.Fatalf("after exit: %+v", st)
	}
	if n := len(h.containers(p)); n != 1 {
		t.Fatalf("restarted before the backoff: %d containers", n)
	}
	h.now = h.now.Add(10 * time.Second)
	h.sync()
	st = h.get("crash").Status.ContainerStatuses[0]
	if st.RestartCount != 1 || st.State.Running == nil {
		t.Fatalf("after backoff: %+v", st)
	}
	// The second crash waits twice as long.
	cs := h.containers(p)
	latest := cs[0]
	for _, c := range cs {
		if c.State == rt.StateRunning {
			latest = c
		}
	}
	h.fake.Exit(latest.ID, 2)
	h.now = h.now.Add(15 * time.Second)
	h.sync()
	if st := h.get("crash").Status.ContainerStatuses[0]; st.RestartCount != 1 {
		t.Fatalf("restarted before 20s backoff: %+v", st)
	}
	h.now = h.now.Add(5 * time.Second)
	h.sync()
	if st := h.get("crash").Status.ContainerStatuses[0]; st.RestartCount != 2 || st.State.Running == nil {
		t.Fatalf("after 20s backoff: %+v", st)
	}
	// Only the current and the previous attempt are kept (for --previous logs).
	if n := len(h.containers(p)); n != 2 {
		t.Fatalf("%d containers kept, want 2", n)
	}
}

func TestRestartPolicyNever(t *testing.T) {
	for _, tt := range []struct {
		code  int32
		phase corev1.PodPhase
	}{{0, corev1.PodSucceeded}, {3, corev1.PodFailed}} {
		h := newHarness(t)
		p := h.pod("job", corev1.RestartPolicyNever, image)
		h.sync()
		h.fake.Exit(h.containers(p)[0].ID, tt.code)
		h.sync()
		h.now = h.now.Add(time.Hour)
		h.sync()
		got := h.get("job")
		if got.Status.Phase != tt.phase || len(h.containers(p)) != 1 {
			t.Fatalf("exit %d: phase %s with %d containers, want %s and no restart", tt.code, got.Status.Phase, len(h.containers(p)), tt.phase)
		}
	}
}

func TestMissingImageBacksOff(t *testing.T) {
	h := newHarness(t)
	h.pod("missing", corev1.RestartPolicyAlways, "localhost/nope:1")
	h.sync()
	st := h.get("missing").Status
	if st.Phase != corev1.PodPending || st.ContainerStatuses[0].State.Waiting.Reason != "ErrImageNeverPull" {
		t.Fatalf("status %+v", st)
	}
	calls := h.fake.Calls["EnsureImage"]
	for range 20 {
		h.sync()
	}
	if h.fake.Calls["EnsureImage"] != calls {
		t.Fatalf("image checked %d more times within the backoff: retry storm", h.fake.Calls["EnsureImage"]-calls)
	}
	h.now = h.now.Add(11 * time.Second)
	h.sync()
	if h.fake.Calls["EnsureImage"] != calls+1 {
		t.Fatal("not retried after the backoff")
	}
}

func TestReadoptsAndRemovesOrphans(t *testing.T) {
	h := newHarness(t)
	p := h.pod("web", corev1.RestartPolicyAlways, image)
	h.sync()
	before := h.containers(p)
	mine := map[string]string{rt.LabelNode: "node-1", rt.LabelTrustDomain: "fabric.test", rt.LabelPeerID: "peer-1", rt.LabelPodUID: "gone"}
	orphan := h.fake.Add(rt.Spec{Name: "stale", Image: image, Labels: mine})
	legacy := h.fake.Add(rt.Spec{Name: "unlabelled", Image: image, Labels: map[string]string{rt.LabelNode: "node-1", rt.LabelPodUID: "gone-too"}})
	other := h.fake.Add(rt.Spec{Name: "other-node", Image: image, Labels: map[string]string{rt.LabelNode: "node-2", rt.LabelPodUID: "x"}})
	// Another fabric on this machine, with a node of the same name.
	foreign := h.fake.Add(rt.Spec{Name: "other-fabric", Image: image, Labels: map[string]string{rt.LabelNode: "node-1", rt.LabelTrustDomain: "other.test", rt.LabelPeerID: "peer-9", rt.LabelPodUID: "y"}})
	samePeerOtherTD := h.fake.Add(rt.Spec{Name: "other-td", Image: image, Labels: map[string]string{rt.LabelNode: "node-1", rt.LabelTrustDomain: "other.test", rt.LabelPeerID: "peer-1", rt.LabelPodUID: "z"}})

	h.agent = h.newAgent() // a restarted node
	h.sync()
	after := h.containers(p)
	if len(after) != 1 || after[0].ID != before[0].ID {
		t.Fatalf("not re-adopted: before %v after %v", before, after)
	}
	all, _ := h.fake.List(context.Background(), nil)
	ids := map[string]bool{}
	for _, c := range all {
		ids[c.ID] = true
	}
	if ids[orphan] || ids[legacy] || !ids[other] || !ids[foreign] || !ids[samePeerOtherTD] {
		t.Fatalf("orphans kept (%v, unlabelled %v) or others' containers removed (other node %v, other fabric %v, %v)",
			ids[orphan], ids[legacy], !ids[other], !ids[foreign], !ids[samePeerOtherTD])
	}
	if c := h.containers(p)[0]; c.Labels[rt.LabelTrustDomain] != "fabric.test" || c.Labels[rt.LabelPeerID] != "peer-1" {
		t.Fatalf("container labels %v", c.Labels)
	}
}

func TestDeletedPodIsStoppedAndRemoved(t *testing.T) {
	h := newHarness(t)
	p := h.pod("web", corev1.RestartPolicyAlways, image)
	h.sync()
	if err := h.objs.Delete(context.Background(), p, nil); err != nil {
		t.Fatal(err)
	}
	if h.get("web").DeletionTimestamp == nil {
		t.Fatal("bound pod deleted without grace")
	}
	h.sync()
	h.agent.stopping.Wait()
	if n := len(h.containers(p)); n != 0 {
		t.Fatalf("%d containers left", n)
	}
	var list corev1.PodList
	h.objs.List(context.Background(), &list, "default", nil)
	if len(list.Items) != 0 {
		t.Fatal("pod object not removed after its containers")
	}
}

func TestRuntimeDown(t *testing.T) {
	h := newHarness(t)
	h.pod("web", corev1.RestartPolicyAlways, image)
	h.sync()
	rv := h.get("web").ResourceVersion
	h.fake.SetDown(true)
	h.sync()
	if h.agent.Healthy() == nil {
		t.Fatal("Healthy() is nil while the runtime is down")
	}
	if h.get("web").ResourceVersion != rv {
		t.Fatal("status rewritten while the runtime was down")
	}
	h.fake.SetDown(false)
	h.sync()
	if err := h.agent.Healthy(); err != nil {
		t.Fatalf("still unhealthy after recovery: %v", err)
	}
}
