package controller

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mycelfabric/mycel/workloadplane/objects"
	"github.com/mycelfabric/mycel/workloadplane/store"
)

type states map[string]MemberState

func (s states) State(peer string) MemberState { return s[peer] }

// TestNodeLifecycleMarksUnreachableNodes: Nodes of dead and departed
// members, and of nodes not met since this node started whose last write
// is old, turn Ready=Unknown with a reason; live and recently heard nodes
// stay Ready.
func TestNodeLifecycleMarksUnreachableNodes(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Unix(1_700_000_000, 0)
	objs := objects.New(st, objects.Config{Now: func() time.Time { return now }})
	ctx := context.Background()
	for name, heartbeat := range map[string]time.Time{"alive": now, "dead": now, "left": now, "unmet-fresh": now.Add(-5 * time.Second), "unmet-stale": now.Add(-time.Minute)} {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"mycel.io/peer-id": "peer-" + name}}}
		if err := objs.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.NewTime(heartbeat)}}
		if err := objs.UpdateStatus(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	liveness := states{"peer-alive": MemberAlive, "peer-dead": MemberDead, "peer-left": MemberLeft}
	clock := now.Add(-time.Minute)
	l, err := NewNodeLifecycle(NodeLifecycleConfig{Client: objs, Liveness: liveness, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	// One that has just started may not have met every live member yet.
	young, err := NewNodeLifecycle(NodeLifecycleConfig{Client: objs, Liveness: states{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := young.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	checkReady(t, objs, map[string]string{"unmet-stale": "True"})
	clock = now
	if err := l.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	checkReady(t, objs, map[string]string{"alive": "True", "dead": "Unknown NodeStatusUnknown", "left": "Unknown NodeShutdown", "unmet-fresh": "True", "unmet-stale": "Unknown NodeStatusUnknown"})
}

// checkReady compares the Nodes' Ready conditions ("Status[ Reason]") with want.
func checkReady(t *testing.T, objs *objects.Objects, want map[string]string) {
	t.Helper()
	ctx := context.Background()
	for name, w := range want {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := objs.Get(ctx, n); err != nil {
			t.Fatal(err)
		}
		c := objects.NodeCondition(n, corev1.NodeReady)
		got := string(c.Status)
		if c.Reason != "" {
			got += " " + c.Reason
		}
		if got != w {
			t.Errorf("%s: Ready %s, want %s", name, got, w)
		}
	}
}
