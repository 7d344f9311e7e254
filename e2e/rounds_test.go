package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestKillRestartRoundsConverge: four nodes run two Deployments while a
// client keeps creating namespaces through whichever nodes are up. Ten
// rounds each kill -9 a random node (the first node too) and restart it,
// some at once and some once the others hold it NotReady. Once the fabric
// is whole again every Deployment is back at its replicas, Running, with
// one container per pod and none left over, and every acknowledged write
// is on every node.
func TestKillRestartRoundsConverge(t *testing.T) {
	a := startNode(t)
	nodes := []*node{a, joinNode(t, a), joinNode(t, a), joinNode(t, a)}
	waitReady(t, nodes, nodes)
	want := map[string]int{"six": 6, "three": 3}
	for name, replicas := range want {
		if out, err := a.kubectlIn(deployment(name, replicas, "v1"), "apply", "-f", "-"); err != nil {
			t.Fatalf("apply %s: %v\n%s", name, err, out)
		}
		rollout(a, name)
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	var (
		mu     sync.Mutex
		up     = map[*node]bool{}
		wrote  []string
		writer sync.WaitGroup
	)
	for _, n := range nodes {
		up[n] = true
	}
	ctx, stop := context.WithCancel(context.Background())
	writer.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			mu.Lock()
			var via *node
			for j := range nodes {
				if n := nodes[(i+j)%len(nodes)]; up[n] {
					via = n
					break
				}
			}
			mu.Unlock()
			name := fmt.Sprintf("w-%d", i)
			// A write through a node that is being killed may fail; only
			// the acknowledged ones must survive.
			if _, err := via.kubectlErr("create", "namespace", name, "--request-timeout=5s"); err == nil {
				mu.Lock()
				wrote = append(wrote, name)
				mu.Unlock()
			}
		}
	})
	for round := range 10 {
		victim := nodes[rng.IntN(len(nodes))]
		mu.Lock()
		up[victim] = false
		mu.Unlock()
		victim.kill9()
		others := without(nodes, victim)
		if round%2 == 1 {
			waitReady(t, others, []*node{victim}, "Unknown")
		}
		victim.start()
		mu.Lock()
		up[victim] = true
		mu.Unlock()
		t.Logf("round %d: killed and restarted %s (waited for NotReady: %v)", round, victim.name, round%2 == 1)
	}
	stop()
	writer.Wait()

	waitReady(t, nodes, nodes)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pods as %s lists them:\n%s", a.name, a.kubectl("get", "pods", "-o", "wide"))
		}
	})
	for name, replicas := range want {
		for _, n := range nodes {
			eventually(t, 120*time.Second, func() error {
				per, total := runningPods(n, name)
				running := 0
				for _, c := range per {
					running += c
				}
				if total != replicas || running != replicas {
					return fmt.Errorf("%s lists %d pods of %s, %d Running (per node %v), want %d", n.name, total, name, running, per, replicas)
				}
				return nil
			})
		}
		eventually(t, 60*time.Second, func() error {
			got := 0
			for _, n := range nodes {
				got += len(running(n, name))
			}
			if got != replicas {
				return fmt.Errorf("%d containers of %s running, want %d", got, name, replicas)
			}
			return nil
		})
	}
	mu.Lock()
	acked := append([]string(nil), wrote...)
	mu.Unlock()
	t.Logf("%d namespaces acknowledged during the rounds", len(acked))
	for _, n := range nodes {
		eventually(t, 60*time.Second, func() error {
			held, err := namespaces(n, "w-")
			if err != nil {
				return err
			}
			have := map[string]bool{}
			for _, h := range held {
				have[h] = true
			}
			for _, w := range acked {
				if !have[w] {
					return fmt.Errorf("%s lacks acknowledged namespace %s", n.name, w)
				}
			}
			return nil
		})
	}
}

func without(nodes []*node, drop *node) []*node {
	var out []*node
	for _, n := range nodes {
		if n != drop {
			out = append(out, n)
		}
	}
	return out
}
