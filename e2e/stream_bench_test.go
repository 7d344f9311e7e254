package e2e

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// streamPod runs the demo server on node on, applied through via.
func streamPod(b *testing.B, via, on *node) {
	via.kubectlIn(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  nodeName: %s
  containers: [{name: web, image: %s}]
`, on.name, demoImage), "apply", "-f", "-")
	via.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=90s")
}

// BenchmarkExecRoundTrip measures `kubectl exec web -- /mycel-demo true`
// (a whole kubectl run: discovery, GET pod, WebSocket upgrade, exec in
// Podman, exit status) through the API of the pod's node and through the
// API of another node, alternating, and reports p50 and p99 of each.
func BenchmarkExecRoundTrip(b *testing.B) {
	a := startNode(b)
	c := joinNode(b, a)
	streamPod(b, a, c)
	var local, remote []time.Duration
	for b.Loop() {
		for _, n := range []*node{c, a} {
			start := time.Now()
			n.kubectl("exec", "web", "--", "/mycel-demo", "true")
			if n == c {
				local = append(local, time.Since(start))
			} else {
				remote = append(remote, time.Since(start))
			}
		}
	}
	percentiles(b, "local", local)
	percentiles(b, "via-other-node", remote)
}

// BenchmarkPortForwardThroughput downloads 64 MiB from the pod's HTTP
// server through `kubectl port-forward` at another node's API, and the
// same directly from the pod's IP on the Podman bridge, alternating; it
// reports MB/s of each and the time to first byte of a small request.
func BenchmarkPortForwardThroughput(b *testing.B) {
	a := startNode(b)
	c := joinNode(b, a)
	streamPod(b, a, c)
	ip := strings.TrimSpace(a.kubectl("get", "pod", "web", "-o", "jsonpath={.status.podIP}"))
	port := freePort(b)
	pf := a.background(b, "port-forward", "pod/web", port+":8080")
	pf.waitFor(b, "Forwarding from 127.0.0.1:"+port)
	const size = 64 << 20
	fetch := func(host, path string) (time.Duration, int64) {
		start := time.Now()
		resp, err := http.Get("http://" + host + path)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(start), n
	}
	var fwdRate, directRate []float64
	var fwdTTFB, directTTFB []time.Duration
	for b.Loop() {
		for _, host := range []string{"127.0.0.1:" + port, ip + ":8080"} {
			d, n := fetch(host, fmt.Sprintf("/bytes?n=%d", size))
			if n != size {
				b.Fatalf("%s: %d bytes", host, n)
			}
			small, _ := fetch(host, "/")
			if strings.HasPrefix(host, "127.") {
				fwdRate, fwdTTFB = append(fwdRate, float64(n)/1e6/d.Seconds()), append(fwdTTFB, small)
			} else {
				directRate, directTTFB = append(directRate, float64(n)/1e6/d.Seconds()), append(directTTFB, small)
			}
		}
	}
	median := func(v []float64) float64 { sort.Float64s(v); return v[len(v)/2] }
	b.ReportMetric(median(fwdRate), "port-forward-MB/s")
	b.ReportMetric(median(directRate), "direct-MB/s")
	percentiles(b, "port-forward-request", fwdTTFB)
	percentiles(b, "direct-request", directTTFB)
}
