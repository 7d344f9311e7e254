package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// The placement benchmarks run real nodes on hosts of their own with real
// Podman; docs/benchmarks.md has the results.

func watchPods(c kubernetes.Interface, ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	return c.CoreV1().Pods("default").Watch(ctx, o)
}

// boundTo keys a pod by where it is bound: "NAME@NODE" once it is.
func boundTo(obj runtime.Object) []string {
	if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
		return []string{p.Name + "@bound"}
	}
	return nil
}

func barePod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: demoImage}}}}
}

// BenchmarkPlacementLatency: a pod created on one of five nodes, until that
// node's watch shows it bound: the pod replicates to its owner, the owner
// negotiates with d=3 candidates, and the binding replicates back.
//
//	MYCEL_E2E=1 go test -run '^$' -bench PlacementLatency -benchtime 50x ./e2e/
func BenchmarkPlacementLatency(b *testing.B) {
	_, nodes := onHosts(b, 5)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := watchAll(ctx, b, nodes[:1], watchPods, boundTo)
	c := clientOf(b, nodes[0])
	var all []time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("p-%d", i)
		start := time.Now()
		if _, err := c.CoreV1().Pods("default").Create(ctx, barePod(name), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		all = append(all, lastSeen(b, seen, name+"@bound", start, 30*time.Second)...)
	}
	percentiles(b, "create-to-bound", all)
	// The owners' own view: negotiation time and messages per placement.
	var seconds, placed, messages float64
	for _, n := range nodes {
		f := metricFamilies(b, n)
		if h := f["mycel_sched_negotiation_seconds"]; h != nil {
			for _, m := range h.GetMetric() {
				seconds += m.GetHistogram().GetSampleSum()
				placed += float64(m.GetHistogram().GetSampleCount())
			}
		}
		if c := f["mycel_sched_messages_total"]; c != nil {
			messages += c.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if placed > 0 {
		b.ReportMetric(1000*seconds/placed, "negotiation-mean-ms")
		b.ReportMetric(messages/placed, "messages/placement")
	}
}

// BenchmarkKillReplaced: three nodes run a 6-replica Deployment; a node
// hosting pods is killed with SIGKILL, until a surviving node lists 6
// Running pods, none on the dead node. Each iteration kills the next node
// and, untimed, restarts it, waits until the fabric is whole again (every
// node holds every other alive) and spreads the pods again with a rollout
// restart; it reports how many pods the killed nodes held on average.
//
//	MYCEL_E2E=1 go test -run '^$' -bench KillReplaced -benchtime 5x ./e2e/
func BenchmarkKillReplaced(b *testing.B) {
	_, nodes := onHosts(b, 3)
	if out, err := nodes[0].kubectlIn(deployment("kr", 6, "v1"), "apply", "-f", "-"); err != nil {
		b.Fatalf("apply: %v\n%s", err, out)
	}
	rollout(nodes[0], "kr")
	var all []time.Duration
	lost := 0
	for i := 0; b.Loop(); i++ {
		victim, survivor := nodes[i%3], nodes[(i+1)%3]
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		w, err := clientOf(b, survivor).CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "app=kr"})
		if err != nil {
			b.Fatal(err)
		}
		list, err := clientOf(b, survivor).CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=kr"})
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range list.Items {
			if p.Spec.NodeName == victim.name {
				lost++
			}
		}
		killed := time.Now()
		victim.kill9()
		pods := map[string]*corev1.Pod{}
		for done := false; !done; {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					b.Fatal("watch ended before the pods were replaced")
				}
				p, _ := ev.Object.(*corev1.Pod)
				if p == nil {
					continue
				}
				if ev.Type == watch.Deleted {
					delete(pods, p.Name)
				} else {
					pods[p.Name] = p
				}
				live, running := 0, 0
				for _, p := range pods {
					if p.DeletionTimestamp != nil {
						continue // on its way out
					}
					live++
					if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != victim.name {
						running++
					}
				}
				done = running == 6 && live == 6
			case <-ctx.Done():
				b.Fatalf("pods of %s not replaced within 3 minutes", victim.name)
			}
		}
		all = append(all, time.Since(killed))
		w.Stop()
		cancel()

		b.StopTimer()
		victim.start()
		expectRunning(b, victim, "kr", 0)
		waitWhole(b, nodes)
		// Mycel does not move running pods back to a node that returns:
		// spread them again, so that every kill takes a node's share.
		nodes[0].kubectl("rollout", "restart", "deployment/kr")
		rollout(nodes[0], "kr")
		eventually(b, 90*time.Second, func() error {
			list, err := clientOf(b, survivor).CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=kr"})
			if err != nil {
				return err
			}
			if len(list.Items) != 6 {
				return fmt.Errorf("%d pods of kr, want the 6 of the new ReplicaSet", len(list.Items))
			}
			return nil
		})
		b.StartTimer()
	}
	percentiles(b, "kill-to-6-running", all)
	b.ReportMetric(float64(lost)/float64(len(all)), "pods-on-victim")
}
