package e2e

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// clientOf is a client-go clientset for n's API (what kubectl uses), with
// client-go's rate limit lifted: benchmarks write fast.
func clientOf(tb testing.TB, n *node) kubernetes.Interface {
	tb.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", n.kubeconfig)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 5000, 5000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return cs
}

// sightings records when one node's watch showed each key.
type sightings struct {
	mu      sync.Mutex
	at      map[string][]time.Time
	changed chan struct{}
}

func (s *sightings) add(key string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at[key] = append(s.at[key], at)
	close(s.changed)
	s.changed = make(chan struct{})
}

// await waits until cond, checked under the lock on every sighting, holds.
func (s *sightings) await(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// since waits for the first sighting of key at or after t.
func (s *sightings) since(ctx context.Context, key string, t time.Time) (time.Time, error) {
	var got time.Time
	err := s.await(ctx, func() bool {
		for _, at := range s.at[key] {
			if !at.Before(t) {
				got = at
				return true
			}
		}
		return false
	})
	return got, err
}

// count waits until n distinct keys starting with prefix were seen and
// returns when the last of them first was.
func (s *sightings) count(ctx context.Context, prefix string, n int) (time.Time, error) {
	var last time.Time
	err := s.await(ctx, func() bool {
		seen := 0
		last = time.Time{}
		for k, ats := range s.at {
			if strings.HasPrefix(k, prefix) {
				seen++
				if ats[0].After(last) {
					last = ats[0]
				}
			}
		}
		return seen >= n
	})
	return last, err
}

// watchAll watches one kind on every node until ctx ends and records, for
// every object a watch shows, the keys key returns for it. A watch that
// ends is resumed from the last resourceVersion it showed.
func watchAll(ctx context.Context, tb testing.TB, nodes []*node, open func(kubernetes.Interface, context.Context, metav1.ListOptions) (watch.Interface, error), key func(runtime.Object) []string) []*sightings {
	tb.Helper()
	out := make([]*sightings, len(nodes))
	ready := make(chan struct{}, len(nodes))
	for i, n := range nodes {
		s := &sightings{at: map[string][]time.Time{}, changed: make(chan struct{})}
		out[i] = s
		cs := clientOf(tb, n)
		go func() {
			rv, first := "", true
			for ctx.Err() == nil {
				w, err := open(cs, ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond): // the node may be down; retry
					}
					continue
				}
				if first {
					ready <- struct{}{}
					first = false
				}
				for ev := range w.ResultChan() {
					now := time.Now()
					if m, err := meta.Accessor(ev.Object); err == nil {
						rv = m.GetResourceVersion()
					}
					if ev.Type == watch.Error {
						rv = "" // too far behind (410): start again from a list
					}
					if ev.Type == watch.Added || ev.Type == watch.Modified {
						for _, k := range key(ev.Object) {
							s.add(k, now)
						}
					}
				}
				w.Stop()
			}
		}()
	}
	for range nodes {
		select {
		case <-ready:
		case <-time.After(time.Minute):
			tb.Fatal("watches did not start within a minute")
		}
	}
	return out
}

func watchNodes(c kubernetes.Interface, ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	return c.CoreV1().Nodes().Watch(ctx, o)
}

func watchNamespaces(c kubernetes.Interface, ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	return c.CoreV1().Namespaces().Watch(ctx, o)
}

// readiness keys a Node by its Ready condition: "NAME=True", "NAME=Unknown".
func readiness(obj runtime.Object) []string {
	node, ok := obj.(*corev1.Node)
	if !ok {
		return nil
	}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return []string{node.Name + "=" + string(c.Status)}
		}
	}
	return nil
}

// nameOf keys an object by its name.
func nameOf(obj runtime.Object) []string {
	if m, err := meta.Accessor(obj); err == nil {
		return []string{m.GetName()}
	}
	return nil
}

// percentiles reports p50, p99 and max of samples, in milliseconds.
func percentiles(b *testing.B, what string, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	pct := func(p float64) float64 {
		return float64(samples[int(p*float64(len(samples)-1)+0.5)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), what+"-p50-ms")
	b.ReportMetric(pct(0.99), what+"-p99-ms")
	b.ReportMetric(float64(samples[len(samples)-1].Microseconds())/1000, what+"-max-ms")
}
