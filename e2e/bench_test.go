package e2e

import (
	"fmt"
	"sort"
	"testing"
	"time"
)

// BenchmarkDeploy10Replicas measures `kubectl apply` of a 10-replica
// Deployment until all ten pods run (rollout status returns once Podman
// reports every container running), with real Podman and kubectl. Run with
// -benchtime=Nx; it reports p50 and p99 over the N runs.
func BenchmarkDeploy10Replicas(b *testing.B) {
	n := startNode(b)
	var samples []time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("bench%d", i)
		start := time.Now()
		if out, err := n.kubectlIn(deployment(name, 10, "bench"), "apply", "-f", "-"); err != nil {
			b.Fatalf("apply: %v\n%s", err, out)
		}
		rollout(n, name)
		samples = append(samples, time.Since(start))
		b.StopTimer()
		n.kubectl("delete", "deployment", name, "--wait=true")
		eventually(b, 2*time.Minute, func() error {
			if cs := n.containers(""); len(cs) != 0 {
				return fmt.Errorf("%d containers left", len(cs))
			}
			return nil
		})
		b.StartTimer()
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	pct := func(p float64) float64 {
		return float64(samples[int(p*float64(len(samples)-1)+0.5)].Milliseconds())
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(samples[len(samples)-1].Milliseconds()), "max-ms")
}

// BenchmarkIdleNodeRSS reports the resident memory of a node with no pods
// after it has idled for ten seconds.
func BenchmarkIdleNodeRSS(b *testing.B) {
	n := startNode(b)
	for b.Loop() {
		time.Sleep(10 * time.Second) // the idle period being measured, not synchronization
	}
	b.ReportMetric(rssMiB(b, n), "rss-MiB")
	b.ReportMetric(procStatusMiB(b, n, "RssAnon"), "anon-MiB")
	b.ReportMetric(procStatusMiB(b, n, "RssFile"), "file-MiB")
}
