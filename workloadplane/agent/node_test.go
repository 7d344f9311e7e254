package agent

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mycelfabric/mycel/machineplane/host"
	"github.com/mycelfabric/mycel/machineplane/noderecord"
)

// TestHeartbeatDerivesNodeFromRecord: the Node object carries the labels,
// capacity and versions of the node's record, keeps labels users added,
// and turns NotReady while the runtime is down.
func TestHeartbeatDerivesNodeFromRecord(t *testing.T) {
	h := newHarness(t)
	rec := &noderecord.Record{PeerID: "12D3KooWpeer", Name: "node-1", Labels: map[string]string{"zone": "a"},
		Versions:    map[string]string{"mycel": "0.9.0", "os": "linux", "arch": "arm64", "runtime": "fake/1.2.3"},
		Capacity:    map[string]string{"cpu": "4", "memory": "8Gi", "pods": "110"},
		Allocatable: map[string]string{"cpu": "3", "memory": "6Gi", "pods": "100"},
		APIURL:      "https://192.0.2.1:6443"}
	a, err := New(Config{NodeName: "node-1", Client: h.objs, Runtime: h.fake, Now: func() time.Time { return h.now },
		Record:  func(context.Context) (*noderecord.Record, error) { return rec, nil },
		Machine: host.Machine{Hostname: "box", KernelVersion: "6.1", OSImage: "Debian"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	node := func() *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}
		if err := h.objs.Get(ctx, n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := a.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	n := node()
	if n.Labels["mycel.io/peer-id"] != "12D3KooWpeer" || n.Labels["zone"] != "a" || n.Labels[corev1.LabelArchStable] != "arm64" {
		t.Errorf("labels %v", n.Labels)
	}
	info := n.Status.NodeInfo
	if info.ContainerRuntimeVersion != "fake://1.2.3" || info.KubeletVersion != "mycel/v0.9.0" || info.OSImage != "Debian" || info.MachineID != "12D3KooWpeer" {
		t.Errorf("nodeInfo %+v", info)
	}
	if c := n.Status.Allocatable[corev1.ResourceCPU]; c.String() != "3" {
		t.Errorf("allocatable cpu %s", c.String())
	}
	if a := n.Status.Addresses; len(a) != 2 || a[0].Address != "192.0.2.1" || a[1].Address != "box" {
		t.Errorf("addresses %v", a)
	}

	n.Labels["team"] = "blue" // as `kubectl label node` does
	if err := h.objs.Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	h.fake.SetDown(true)
	if err := a.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	n = node()
	ready := n.Status.Conditions[0]
	if n.Labels["team"] != "blue" || ready.Status != corev1.ConditionFalse || ready.Reason != "ContainerRuntimeUnavailable" {
		t.Errorf("after the runtime went down: labels %v, Ready %+v", n.Labels, ready)
	}
}

// TestHeartbeatWritesOnlyChanges: an unchanged Node status is not
// rewritten (no new resourceVersion, no watch event) until its heartbeat
// is StatusReportEvery old; a change is written at once.
func TestHeartbeatWritesOnlyChanges(t *testing.T) {
	h := newHarness(t)
	rec := &noderecord.Record{PeerID: "12D3KooWpeer", Name: "node-1", Versions: map[string]string{"runtime": "fake/1"}}
	a, err := New(Config{NodeName: "node-1", Client: h.objs, Runtime: h.fake, Now: func() time.Time { return h.now },
		Record: func(context.Context) (*noderecord.Record, error) { return rec, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rv := func() string {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}
		if err := h.objs.Get(ctx, n); err != nil {
			t.Fatal(err)
		}
		return n.ResourceVersion
	}
	beat := func() string {
		if err := a.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		return rv()
	}
	first := beat()
	h.now = h.now.Add(time.Minute)
	if got := beat(); got != first {
		t.Fatalf("an unchanged status was rewritten: resourceVersion %s -> %s", first, got)
	}
	h.fake.SetDown(true)
	down := beat()
	if down == first {
		t.Fatal("the runtime going down was not written")
	}
	h.now = h.now.Add(StatusReportEvery)
	if got := beat(); got == down {
		t.Fatalf("the heartbeat was not refreshed after %s", StatusReportEvery)
	}
}

// TestHeartbeatAnswersAnOverrule: a Node that another node marks
// Ready=Unknown (its owner, while membership held it dead) or deletes is
// written again at once, not at the next heartbeat.
func TestHeartbeatAnswersAnOverrule(t *testing.T) {
	h := newHarness(t)
	rec := &noderecord.Record{PeerID: "12D3KooWpeer", Name: "node-1", Versions: map[string]string{"runtime": "fake/1"}}
	a, err := New(Config{NodeName: "node-1", Client: h.objs, Runtime: h.fake, Now: func() time.Time { return h.now },
		HeartbeatInterval: time.Hour, Record: func(context.Context) (*noderecord.Record, error) { return rec, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.RunHeartbeat(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	ready := func() corev1.ConditionStatus {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}
		if err := h.objs.Get(ctx, n); err != nil || len(n.Status.Conditions) == 0 {
			return ""
		}
		return n.Status.Conditions[0].Status
	}
	changed := make(chan struct{}, 1)
	go h.objs.Notify(ctx, "nodes", changed)
	await := func(what string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		recheck := time.NewTicker(50 * time.Millisecond) // Notify may not be watching yet
		defer recheck.Stop()
		for ready() != corev1.ConditionTrue {
			select {
			case <-changed:
			case <-recheck.C:
			case <-deadline:
				t.Fatalf("the Node was not Ready again after %s", what)
			}
		}
	}
	await("the first heartbeat")
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}
	if err := h.objs.Get(ctx, n); err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions[0].Status, n.Status.Conditions[0].Reason = corev1.ConditionUnknown, "NodeStatusUnknown"
	if err := h.objs.UpdateStatus(ctx, n); err != nil {
		t.Fatal(err)
	}
	await("it was marked Unknown")
	if err := h.objs.Delete(ctx, n, nil); err != nil {
		t.Fatal(err)
	}
	await("it was deleted")
}
