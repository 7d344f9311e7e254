package mycel

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/workloadplane/runtime/runtimetest"
)

// waitFor re-checks cond whenever n's store changes its nodes or pods (the
// outcome of replication, membership and placement mostly lands there),
// and every 100 ms for the rest, until cond holds or timeout passes.
func waitFor(t *testing.T, n *Node, timeout time.Duration, cond func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	kick := make(chan struct{}, 1)
	for _, res := range []string{"nodes", "pods"} {
		go n.objs.Notify(ctx, res, kick)
	}
	// Conditions on other kinds or on in-memory state (membership,
	// ownership) have no event to wait for: look again now and then.
	recheck := time.NewTicker(100 * time.Millisecond)
	defer recheck.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not reached within %s: %v", timeout, err)
		case <-kick:
		case <-recheck.C:
		}
	}
}

func threeNodes(t *testing.T) []*Node {
	t.Helper()
	caDir := filepath.Join(t.TempDir(), "ca")
	if _, err := ca.Init(caDir, "fabric.test"); err != nil {
		t.Fatal(err)
	}
	a := startTestNode(t, caDir, "node-a", nil)
	return []*Node{a, startTestNode(t, caDir, "node-b", a.P2PAddrs()), startTestNode(t, caDir, "node-c", a.P2PAddrs())}
}

func readyNodes(n *Node) (map[string]corev1.ConditionStatus, error) {
	var nodes corev1.NodeList
	if err := n.objs.List(context.Background(), &nodes, "", nil); err != nil {
		return nil, err
	}
	out := map[string]corev1.ConditionStatus{}
	for _, node := range nodes.Items {
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				out[node.Name] = c.Status
			}
		}
	}
	return out, nil
}

// TestFabricReplicatesAndSpreads: three nodes see each other, a Deployment
// created on one is placed over all three, every node lists the same pods,
// and a node that stops turns NotReady everywhere.
func TestFabricReplicatesAndSpreads(t *testing.T) {
	nodes := threeNodes(t)
	for _, n := range nodes {
		waitFor(t, n, 30*time.Second, func() error {
			if live := n.members.Live(); len(live) != 3 {
				return fmt.Errorf("%s sees %d live members", n.Name(), len(live))
			}
			r, err := readyNodes(n)
			if err != nil || len(r) != 3 {
				return fmt.Errorf("%s lists nodes %v (%v)", n.Name(), r, err)
			}
			return nil
		})
	}

	replicas := int32(6)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "localhost/mycel-demo:0.1"}}}}},
	}
	if err := nodes[1].objs.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		waitFor(t, n, 60*time.Second, func() error {
			var pods corev1.PodList
			if err := n.objs.List(context.Background(), &pods, "default", nil); err != nil {
				return err
			}
			perNode := map[string]int{}
			running := 0
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil {
					perNode[p.Spec.NodeName]++
				}
				if p.Status.Phase == corev1.PodRunning {
					running++
				}
			}
			// The default placement policy spreads replicas over nodes.
			if running != 6 || len(pods.Items) != 6 || perNode["node-a"] != 2 || perNode["node-b"] != 2 || perNode["node-c"] != 2 {
				return fmt.Errorf("%s: %d pods, %d running, per node %v", n.Name(), len(pods.Items), running, perNode)
			}
			return nil
		})
	}

	nodes[2].Close()
	for _, n := range nodes[:2] {
		waitFor(t, n, 30*time.Second, func() error {
			r, err := readyNodes(n)
			if err != nil || r["node-c"] != corev1.ConditionUnknown || r["node-a"] != corev1.ConditionTrue {
				return fmt.Errorf("%s: node readiness %v (%v)", n.Name(), r, err)
			}
			return nil
		})
	}
	st := nodes[0].Status()
	if st.Members != 2 || len(st.Peers) != 2 {
		t.Errorf("status after node-c left: %+v", st)
	}
	// node-c's pods are re-placed on the two nodes left: 6 Running, 3 each.
	for _, n := range nodes[:2] {
		waitFor(t, n, 60*time.Second, func() error {
			var pods corev1.PodList
			if err := n.objs.List(context.Background(), &pods, "default", nil); err != nil {
				return err
			}
			perNode := map[string]int{}
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
					perNode[p.Spec.NodeName]++
				}
			}
			if len(pods.Items) != 6 || perNode["node-a"] != 3 || perNode["node-b"] != 3 {
				return fmt.Errorf("%s after node-c left: %d pods, running per node %v", n.Name(), len(pods.Items), perNode)
			}
			return nil
		})
	}
}

// TestMixedVersionsPlaceByRequirement: in a fabric where one node runs a
// newer runtime, replicas that require it land only there, and a pod that
// requires a version no node has waits and says so.
// TestLargeObjectReplicates: a ConfigMap near Kubernetes' 1 MiB limit
// reaches the other nodes (its signed envelope, the object base64-encoded,
// is larger than 1 MiB).
func TestLargeObjectReplicates(t *testing.T) {
	_, a, b := twoNodes(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "default"},
		Data: map[string]string{"blob": strings.Repeat("x", 900<<10)}}
	if err := a.objs.Create(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, 30*time.Second, func() error {
		got := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "default"}}
		if err := b.objs.Get(context.Background(), got); err != nil {
			return err
		}
		if len(got.Data["blob"]) != 900<<10 {
			return fmt.Errorf("node-b holds a blob of %d bytes", len(got.Data["blob"]))
		}
		return nil
	})
}

func TestMixedVersionsPlaceByRequirement(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	if _, err := ca.Init(caDir, "fabric.test"); err != nil {
		t.Fatal(err)
	}
	a := startTestNode(t, caDir, "node-a", nil)
	b := startTestNode(t, caDir, "node-b", a.P2PAddrs())
	newer := runtimetest.New(time.Now, "localhost/mycel-demo:0.1")
	newer.Version = "2.1.0"
	c := startTestNode(t, caDir, "node-c", a.P2PAddrs(), func(cfg *Config) { cfg.Runtime = newer })
	waitFor(t, a, 30*time.Second, func() error {
		if r, err := readyNodes(a); err != nil || len(r) != 3 || len(a.members.Live()) != 3 || !b.owners.Settled() || !c.owners.Settled() {
			return fmt.Errorf("node-a sees nodes %v, %d live (%v)", r, len(a.members.Live()), err)
		}
		return nil
	})
	replicas := int32(3)
	labels := map[string]string{"app": "needs-new"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "needs-new", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"mycel.io/requires": "runtime>=fake/2"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "localhost/mycel-demo:0.1"}}}}},
	}
	ctx := context.Background()
	if err := a.objs.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	tooNew := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "too-new", Namespace: "default", Annotations: map[string]string{"mycel.io/requires": "runtime>=fake/3"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "localhost/mycel-demo:0.1"}}}}
	if err := b.objs.Create(ctx, tooNew); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a, 60*time.Second, func() error {
		var pods corev1.PodList
		if err := a.objs.List(ctx, &pods, "default", k8slabels.SelectorFromSet(labels)); err != nil {
			return err
		}
		on := map[string]int{}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				on[p.Spec.NodeName]++
			}
		}
		if len(pods.Items) != 3 || on["node-c"] != 3 {
			return fmt.Errorf("%d pods, running per node %v; want all 3 on node-c", len(pods.Items), on)
		}
		if err := a.objs.Get(ctx, tooNew); err != nil {
			return err
		}
		for _, cond := range tooNew.Status.Conditions {
			if cond.Type == corev1.PodScheduled && strings.Contains(cond.Message, "3 node(s) didn't have the required runtime>=fake/3") {
				return nil
			}
		}
		return fmt.Errorf("too-new: node %q, conditions %+v", tooNew.Spec.NodeName, tooNew.Status.Conditions)
	})
}

// TestLogsFromAnyNode: `kubectl logs` of a pod on node-b answers through
// node-a's API, forwarded to node-b's agent over libp2p; a pod that is not
// there answers 404 through either.
func TestLogsFromAnyNode(t *testing.T) {
	caDir, a, b := twoNodes(t)
	waitFor(t, a, 30*time.Second, func() error {
		if len(a.members.Live()) != 2 || len(b.members.Live()) != 2 || !a.owners.Settled() || !b.owners.Settled() {
			return fmt.Errorf("live members: %d and %d", len(a.members.Live()), len(b.members.Live()))
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "chatty", Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: "node-b", Containers: []corev1.Container{{Name: "app", Image: "localhost/mycel-demo:0.1"}}}}
	if err := b.objs.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a, 30*time.Second, func() error {
		if err := a.objs.Get(ctx, pod); err != nil || pod.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("pod %s on node-a: %v", pod.Status.Phase, err)
		}
		return nil
	})
	authority, err := ca.Load(caDir)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(restConfig(t, a, authority))
	if err != nil {
		t.Fatal(err)
	}
	out, err := cs.CoreV1().Pods("default").GetLogs("chatty", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil || !strings.Contains(string(out), "log of default_chatty_app") {
		t.Fatalf("logs of a pod on node-b through node-a: %q, %v", out, err)
	}
	_, err = cs.CoreV1().Pods("default").GetLogs("chatty", &corev1.PodLogOptions{Container: "nope"}).DoRaw(ctx)
	if !apierrors.IsBadRequest(err) {
		t.Fatalf("logs of an unknown container through node-a: %v, want 400 from node-b", err)
	}
}
