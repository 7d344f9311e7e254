package e2e

import (
	"bytes"
	"context"
	"fmt"
	stdnet "net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The machine-plane benchmarks run real `mycel node` processes, each on a
// host of its own (hostNet), and observe them as kubectl does: through
// watches of every node's API. Each reports distributions in milliseconds;
// docs/benchmarks.md has the results and the commands.

// createNamespace creates a namespace through c.
func createNamespace(ctx context.Context, c kubernetes.Interface, name string) error {
	_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	return err
}

// lastSeen waits until every watch in seen showed key at or after since,
// and returns how long after since each did.
func lastSeen(b *testing.B, seen []*sightings, key string, since time.Time, timeout time.Duration) []time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []time.Duration
	for i, s := range seen {
		at, err := s.since(ctx, key, since)
		if err != nil {
			b.Fatalf("watch %d never showed %s: %v", i, key, err)
		}
		out = append(out, at.Sub(since))
	}
	return out
}

// BenchmarkWritePropagation: a write acknowledged by one of five nodes,
// until the watches of all five show it.
//
//	MYCEL_E2E=1 go test -run '^$' -bench WritePropagation -benchtime 50x ./e2e/
func BenchmarkWritePropagation(b *testing.B) {
	_, nodes := onHosts(b, 5)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := watchAll(ctx, b, nodes, watchNamespaces, nameOf)
	c := clientOf(b, nodes[0])
	var all, each []time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("w-%d", i)
		start := time.Now()
		if err := createNamespace(ctx, c, name); err != nil {
			b.Fatal(err)
		}
		ds := lastSeen(b, seen, name, start, 30*time.Second)
		each = append(each, ds[1:]...) // the other four
		all = append(all, maxOf(ds))
	}
	percentiles(b, "on-all-five", all)
	percentiles(b, "on-each-other", each)
}

// BenchmarkKillNotReady: a node killed with SIGKILL, until every other
// node's watch shows it Ready=Unknown. Each iteration kills the next of
// five nodes and, untimed, restarts it and waits until all show it Ready.
//
//	MYCEL_E2E=1 go test -run '^$' -bench KillNotReady -benchtime 5x ./e2e/
func BenchmarkKillNotReady(b *testing.B) {
	_, nodes := onHosts(b, 5)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := watchAll(ctx, b, nodes, watchNodes, readiness)
	var all, each []time.Duration
	for i := 0; b.Loop(); i++ {
		k := i % len(nodes)
		victim := nodes[k]
		others := append(append([]*sightings{}, seen[:k]...), seen[k+1:]...)
		killed := time.Now()
		victim.kill9()
		ds := lastSeen(b, others, victim.name+"=Unknown", killed, time.Minute)
		each = append(each, ds...)
		all = append(all, maxOf(ds))

		b.StopTimer()
		victim.start()
		lastSeen(b, seen, victim.name+"=True", victim.startedAt, 2*time.Minute)
		b.StartTimer()
	}
	percentiles(b, "on-all-others", all)
	percentiles(b, "on-each-other", each)
}

// BenchmarkJoinVisible: a machine joining a fabric of four with a token,
// from the start of `mycel node --join` until every node's watch shows it
// Ready. Each iteration joins a new machine and, untimed, stops it.
//
//	MYCEL_E2E=1 go test -run '^$' -bench JoinVisible -benchtime 5x ./e2e/
func BenchmarkJoinVisible(b *testing.B) {
	net, nodes := onHosts(b, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := watchAll(ctx, b, nodes, watchNodes, readiness)
	var all []time.Duration
	for b.Loop() {
		n := joinNode(b, nodes[0], net.host())
		all = append(all, maxOf(lastSeen(b, seen, n.name+"=True", n.startedAt, 2*time.Minute)))
		b.StopTimer()
		n.stop()
		b.StartTimer()
	}
	percentiles(b, "on-all", all)
}

// BenchmarkFalsePositives: five healthy nodes under each combination of a
// CPU hog (busy loops, hogPerCore per core, beside the nodes) and packet
// loss (each node drops a share of what it receives from the others,
// iptables statistic), a minute per iteration. No node fails, so every
// suspicion, death and NotReady is a false positive; it reports their
// counts, and what the fabric costs at rest: packets each node receives a
// minute and its CPU.
//
//	MYCEL_E2E=1 go test -run '^$' -bench FalsePositives -benchtime 1x -timeout 30m ./e2e/
func BenchmarkFalsePositives(b *testing.B) {
	net, nodes := onHosts(b, 5)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := watchAll(ctx, b, nodes, watchNodes, readiness)
	for _, hog := range []bool{false, true} {
		for _, loss := range []int{0, 5, 10, 20} {
			b.Run(fmt.Sprintf("hog=%v/loss=%d%%", hog, loss), func(b *testing.B) {
				waitReady(b, nodes, nodes) // the last cell's harm undone
				before, beforeRx, beforeCPU := membershipEvents(b, nodes), net.received(nodes), cpuTime(b, nodes)
				start := time.Now()
				if loss > 0 {
					for _, n := range nodes {
						net.loss(n, float64(loss)/100)
					}
				}
				if hog {
					defer startHog(b)()
				}
				for b.Loop() {
					time.Sleep(time.Minute) // the window being measured, not synchronization
				}
				elapsed := time.Since(start)
				dropped := 0
				for _, n := range nodes {
					dropped += net.dropped(n)
				}
				rx, cpu := net.received(nodes)-beforeRx, cpuTime(b, nodes)-beforeCPU
				net.heal()
				after := membershipEvents(b, nodes)
				nodeMinutes := elapsed.Minutes() * float64(len(nodes))
				b.ReportMetric(nodeMinutes, "node-minutes")
				b.ReportMetric(float64(dropped), "packets-dropped")
				b.ReportMetric(float64(rx)/nodeMinutes, "packets/node-minute")
				b.ReportMetric(100*cpu.Seconds()/(elapsed.Seconds()*float64(len(nodes))), "%cpu/node")
				b.ReportMetric(after["NodeSuspect"]-before["NodeSuspect"], "suspicions")
				b.ReportMetric(after["NodeDead"]-before["NodeDead"], "deaths")
				b.ReportMetric(float64(sightingsSince(seen, "=Unknown", start)), "notready-sightings")
			})
		}
	}
}

// sightingsSince counts what the watches saw with the given suffix since
// start.
func sightingsSince(seen []*sightings, suffix string, start time.Time) int {
	count := 0
	for _, s := range seen {
		s.mu.Lock()
		for k, ats := range s.at {
			if strings.HasSuffix(k, suffix) {
				for _, at := range ats {
					if at.After(start) {
						count++
					}
				}
			}
		}
		s.mu.Unlock()
	}
	return count
}

// hogPerCore is how many busy loops startHog runs per core: enough to keep
// the load average near 10 per core, as on a machine whose workloads
// saturate it.
const hogPerCore = 10

// startHog saturates every core with busy loops beside the nodes, until the
// returned stop is called.
func startHog(t testing.TB) (stop func()) {
	t.Helper()
	var procs []*exec.Cmd
	for range hogPerCore * goruntime.NumCPU() {
		c := exec.Command("sh", "-c", "while :; do :; done")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, c)
	}
	stop = func() {
		for _, c := range procs {
			c.Process.Kill()
			c.Wait()
		}
		procs = nil
	}
	t.Cleanup(stop)
	return stop
}

// cpuTime is the CPU (user and system) the nodes' processes used so far.
func cpuTime(t testing.TB, nodes []*node) time.Duration {
	t.Helper()
	var total time.Duration
	for _, n := range nodes {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		// Fields after the command's closing parenthesis: utime and stime
		// are the 12th and 13th, in clock ticks (USER_HZ, 100 on Linux).
		fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
		for _, f := range fields[11:13] {
			ticks, err := strconv.Atoi(f)
			if err != nil {
				t.Fatal(err)
			}
			total += time.Duration(ticks) * 10 * time.Millisecond
		}
	}
	return total
}

// metricFamilies reads a node's /metrics.
func metricFamilies(b testing.TB, n *node) map[string]*dto.MetricFamily {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	raw, err := clientOf(b, n).CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		b.Fatalf("%s /metrics: %v", n.name, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		b.Fatal(err)
	}
	return families
}

// membershipEvents sums mycel_membership_events_total by event over nodes.
func membershipEvents(b *testing.B, nodes []*node) map[string]float64 {
	b.Helper()
	out := map[string]float64{}
	for _, n := range nodes {
		if f := metricFamilies(b, n)["mycel_membership_events_total"]; f != nil {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// BenchmarkHeal10k: five nodes split 2 | 3 take 10,000 writes (5,000 on
// each side); from the heal until every node's watch shows all 10,000.
//
//	MYCEL_E2E=1 go test -run '^$' -bench Heal10k -benchtime 1x -timeout 30m ./e2e/
func BenchmarkHeal10k(b *testing.B) {
	const objects = 10000
	net, nodes := onHosts(b, 5)
	left, right := nodes[:2], nodes[2:]
	var all, each []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		net.partition(left, right)
		waitReady(b, left, right, "Unknown")
		waitReady(b, right, left, "Unknown")
		prefix := fmt.Sprintf("h%d-", i)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for side, ns := range [][]*node{left, right} {
			for w := range 8 {
				c := clientOf(b, ns[w%len(ns)])
				wg.Go(func() {
					for j := w; j < objects/2; j += 8 {
						if err := createNamespace(context.Background(), c, fmt.Sprintf("%s%d-%d", prefix, side, j)); err != nil {
							errs <- err
							return
						}
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		seen := watchAll(ctx, b, nodes, watchNamespaces, nameOf)
		b.StartTimer()

		healed := time.Now()
		if dir := os.Getenv("MYCEL_E2E_PROFILE_DIR"); dir != "" {
			for _, n := range nodes {
				h, _, _ := stdnet.SplitHostPort(n.apiAddr)
				go exec.Command("curl", "-s", "-o", filepath.Join(dir, n.name+".prof"), "http://"+stdnet.JoinHostPort(h, "6060")+"/debug/pprof/profile?seconds=8").Run()
			}
		}
		net.heal()
		var ds []time.Duration
		for k, s := range seen {
			wctx, c := context.WithTimeout(ctx, 10*time.Minute)
			last, err := s.count(wctx, prefix, objects)
			c()
			if err != nil {
				for _, n := range nodes {
					got, _ := namespaces(n, prefix)
					st, _ := n.kubectlErr("get", "--raw", "/api/cluster/status")
					b.Logf("%s holds %d; status %s\nWARN lines: %s", n.name, len(got), st, grepLog(n.log.String(), "WARN"))
				}
				b.Fatalf("%s never held all %d objects: %v", nodes[k].name, objects, err)
			}
			ds = append(ds, last.Sub(healed))
		}
		cancel()
		if dir := os.Getenv("MYCEL_E2E_PROFILE_DIR"); dir != "" {
			for _, n := range nodes {
				os.WriteFile(filepath.Join(dir, n.name+".log"), []byte(healed.Format("15:04:05.000 healed\n")+n.log.String()), 0o644)
			}
		}
		each = append(each, ds...)
		all = append(all, maxOf(ds))
	}
	percentiles(b, "converged-all", all)
	percentiles(b, "converged-each", each)
}

func maxOf(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func grepLog(log, what string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, what) {
			out = append(out, l)
		}
	}
	if len(out) > 20 {
		out = out[len(out)-20:]
	}
	return strings.Join(out, "\n")
}
