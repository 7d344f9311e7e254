package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// TestConcurrentLabelsAllSurvive: 100 `kubectl label` commands, each adding
// a different label to one Namespace, run at once through the APIs of five
// nodes; every one is acknowledged, and in the end every node holds all
// 100 labels (the store merges per label key), with no loss and with 20 %
// of every node's packets dropped.
func TestConcurrentLabelsAllSurvive(t *testing.T) {
	for _, loss := range []float64{0, 0.2} {
		t.Run(fmt.Sprintf("loss=%.0f%%", loss*100), func(t *testing.T) { concurrentLabels(t, loss) })
	}
}

func concurrentLabels(t *testing.T, loss float64) {
	net, nodes := onHosts(t, 5)
	nodes[0].kubectl("create", "namespace", "merged")
	waitFor := func(n *node) {
		eventually(t, 60*time.Second, func() error {
			_, err := n.kubectlErr("get", "namespace", "merged")
			return err
		})
	}
	for _, n := range nodes {
		waitFor(n)
	}
	if loss > 0 {
		for _, n := range nodes {
			net.loss(n, loss)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := nodes[i%5].kubectlErr("label", "namespace", "merged", fmt.Sprintf("l%03d=v", i)); err != nil {
				errs <- fmt.Errorf("label %d: %v: %s", i, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if loss > 0 {
		dropped := 0
		for _, n := range nodes {
			dropped += net.dropped(n)
		}
		if dropped == 0 {
			t.Fatal("no packet was dropped: the loss was not applied")
		}
		t.Logf("%d packets dropped while labelling", dropped)
	}
	for _, n := range nodes {
		eventually(t, 60*time.Second, func() error {
			out, err := n.kubectlErr("get", "namespace", "merged", "-o", "jsonpath={.metadata.labels}")
			if err != nil {
				return err
			}
			if got := strings.Count(out, `":"v"`); got != 100 {
				return fmt.Errorf("%s holds %d of the 100 labels: %s", n.name, got, out)
			}
			return nil
		})
	}
}

// TestResourceVersionsHoldOnEveryNode: with stock client-go and kubectl, an
// object read on one node is updated through another (its resourceVersion
// is a precondition everywhere), a stale resourceVersion gets 409 Conflict
// on every node, and a watch on one node from another's resourceVersion
// answers 410 Gone (client-go relists) rather than skipping changes.
func TestResourceVersionsHoldOnEveryNode(t *testing.T) {
	_, nodes := onHosts(t, 3)
	ctx := context.Background()
	clients := make([]kubernetes.Interface, len(nodes))
	for i, n := range nodes {
		clients[i] = clientOf(t, n)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "rv", Namespace: "default"}, Data: map[string]string{"count": "0"}}
	if _, err := clients[0].CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	holds := func(want string) {
		for i, c := range clients {
			eventually(t, 30*time.Second, func() error {
				got, err := c.CoreV1().ConfigMaps("default").Get(ctx, "rv", metav1.GetOptions{})
				if err == nil && got.Data["count"] != want {
					err = fmt.Errorf("%s holds count=%s, want %s", nodes[i].name, got.Data["count"], want)
				}
				return err
			})
		}
	}
	holds("0")
	stale, err := clients[0].CoreV1().ConfigMaps("default").Get(ctx, "rv", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Read on each node, write through the next one at once: the write may
	// reach a node before the previous one has.
	for round := 1; round <= 9; round++ {
		from, to := clients[round%3], clients[(round+1)%3]
		got, err := from.CoreV1().ConfigMaps("default").Get(ctx, "rv", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got.Data["count"] = strconv.Itoa(round)
		if _, err := to.CoreV1().ConfigMaps("default").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("round %d: read on %s, update through %s: %v", round, nodes[round%3].name, nodes[(round+1)%3].name, err)
		}
	}
	holds("9")
	// kubectl: get -o yaml on one node, replace through another.
	yaml := nodes[1].kubectl("get", "configmap", "rv", "-o", "yaml")
	if !strings.Contains(yaml, `count: "9"`) {
		t.Fatalf("kubectl get -o yaml on %s: %s", nodes[1].name, yaml)
	}
	if out, err := nodes[2].kubectlIn(strings.Replace(yaml, `count: "9"`, `count: "10"`, 1), "replace", "-f", "-"); err != nil {
		t.Fatalf("kubectl replace through %s of what %s gave: %v: %s", nodes[2].name, nodes[1].name, err, out)
	}
	holds("10")
	// A write through one node, and at once, through the others, writes at
	// the version before it: their owner has seen it, replicated or not.
	before, err := clients[0].CoreV1().ConfigMaps("default").Get(ctx, "rv", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := before.DeepCopy()
	first.Data["count"] = "11"
	if _, err := clients[0].CoreV1().ConfigMaps("default").Update(ctx, first, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients[1:] {
		upd := before.DeepCopy()
		upd.Data["count"] = "lost"
		if _, err := c.CoreV1().ConfigMaps("default").Update(ctx, upd, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
			t.Errorf("update through %s at the version before %s's write: %v, want 409 Conflict", nodes[i+1].name, nodes[0].name, err)
		}
	}
	holds("11")
	// One name created through every node at once: one create succeeds.
	created := make(chan error, len(clients))
	for _, c := range clients {
		go func() {
			_, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "once", Namespace: "default"}}, metav1.CreateOptions{})
			created <- err
		}()
	}
	won := 0
	for range clients {
		switch err := <-created; {
		case err == nil:
			won++
		case !apierrors.IsAlreadyExists(err):
			t.Errorf("concurrent create: %v, want success or 409 AlreadyExists", err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent creates of one name succeeded, want 1", won, len(clients))
	}
	for i, c := range clients {
		upd := stale.DeepCopy()
		upd.Data["count"] = "stale"
		if _, err := c.CoreV1().ConfigMaps("default").Update(ctx, upd, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
			t.Errorf("update through %s with a stale resourceVersion: %v, want 409 Conflict", nodes[i].name, err)
		}
	}
	holds("11")

	list, err := clients[0].CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := clients[1].CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ev, ok := <-w.ResultChan()
	if !ok || ev.Type != watch.Error || !apierrors.IsResourceExpired(apierrors.FromObject(ev.Object)) && !apierrors.IsGone(apierrors.FromObject(ev.Object)) {
		t.Fatalf("watch on %s from %s's resourceVersion: %v %+v, want a 410 error event", nodes[1].name, nodes[0].name, ev.Type, ev.Object)
	}
}
