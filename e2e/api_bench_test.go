package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// fiftyFieldDeployment is a Deployment apply configuration of about fifty
// fields: labels, annotations, two containers with env, ports, resources
// and probes; gen changes one label and one env value.
func fiftyFieldDeployment(gen int) []byte {
	return []byte(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: bench
  labels: {app: bench, tier: web, team: platform, gen: "g%[1]d"}
  annotations: {owner: platform, purpose: benchmark}
spec:
  replicas: 3
  revisionHistoryLimit: 5
  minReadySeconds: 2
  progressDeadlineSeconds: 300
  selector: {matchLabels: {app: bench}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata: {labels: {app: bench, tier: web}}
    spec:
      terminationGracePeriodSeconds: 20
      containers:
      - name: web
        image: %[2]s
        args: ["-addr", ":8080"]
        ports: [{name: http, containerPort: 8080}]
        env: [{name: MODE, value: prod}, {name: GEN, value: "%[1]d"}, {name: LEVEL, value: "3"}]
        resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 500m, memory: 128Mi}}
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 5, failureThreshold: 3}
        livenessProbe: {tcpSocket: {port: 8080}, initialDelaySeconds: 5, periodSeconds: 10}
      - name: side
        image: %[2]s
        args: ["sleep", "100000"]
        env: [{name: ROLE, value: sidecar}]
        resources: {requests: {cpu: 10m, memory: 16Mi}}
`, gen, demoImage))
}

// BenchmarkServerSideApply measures one server-side apply of a
// fifty-field Deployment that changes two fields, through client-go at a
// node's API (TLS, field management, validation, store write), and
// reports p50 and p99.
func BenchmarkServerSideApply(b *testing.B) {
	n := startNode(b)
	deps := clientOf(b, n).AppsV1().Deployments("default")
	ctx := context.Background()
	var samples []time.Duration
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		if _, err := deps.Patch(ctx, "bench", types.ApplyYAMLPatchType, fiftyFieldDeployment(i), metav1.PatchOptions{FieldManager: "bench"}); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
	}
	percentiles(b, "apply", samples)
}

// BenchmarkList10000ConfigMaps creates 10,000 ConfigMaps, then lists them
// with client-go in pages of 500 (kubectl's default chunk size) and whole,
// and reports the time of each and the node's resident memory before and
// after the lists.
func BenchmarkList10000ConfigMaps(b *testing.B) {
	n := startNode(b)
	cms := clientOf(b, n).CoreV1().ConfigMaps("default")
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 10000; i += 16 {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%05d", i)}, Data: map[string]string{"key": strings.Repeat("v", 64)}}
				if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	before := rssMiB(b, n)
	var paged, whole []time.Duration
	for b.Loop() {
		start := time.Now()
		count, cont := 0, ""
		for {
			l, err := cms.List(ctx, metav1.ListOptions{Limit: 500, Continue: cont})
			if err != nil {
				b.Fatal(err)
			}
			count += len(l.Items)
			if cont = l.Continue; cont == "" {
				break
			}
		}
		paged = append(paged, time.Since(start))
		if count < 10000 {
			b.Fatalf("paged list: %d ConfigMaps", count)
		}
		start = time.Now()
		if _, err := cms.List(ctx, metav1.ListOptions{}); err != nil {
			b.Fatal(err)
		}
		whole = append(whole, time.Since(start))
	}
	percentiles(b, "paged-500", paged)
	percentiles(b, "whole", whole)
	b.ReportMetric(before, "rss-before-MiB")
	b.ReportMetric(rssMiB(b, n), "rss-after-MiB")
}

func rssMiB(tb testing.TB, n *node) float64 { return procStatusMiB(tb, n, "VmRSS") }

// procStatusMiB is a memory figure of n's process from /proc/PID/status
// (VmRSS; RssAnon, what the process itself allocated; RssFile, pages of
// files it maps, such as its own code, which processes of one binary share).
func procStatusMiB(tb testing.TB, n *node, field string) float64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	tb.Fatalf("no %s in /proc/PID/status", field)
	return 0
}
