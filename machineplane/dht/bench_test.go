package dht

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mycelfabric/mycel/machineplane/noderecord"
)

// BenchmarkFabric100 runs 100 real libp2p hosts with the real DHT in one
// process, on loopback TCP and QUIC, each joined through node 0 and holding
// its signed record. Each iteration a random node publishes a newer record
// and a random other node looks it up. It reports the publication latency
// (until the record is stored on the closest peers), the lookup latency, and
// the propagation latency (publication start until the other node's lookup
// returns the new record), p50 and p99; a lookup that returns an older
// record fails the benchmark.
//
//	go test -run '^$' -bench Fabric100 -benchtime 50x ./machineplane/dht/
func BenchmarkFabric100(b *testing.B) {
	const size = 100
	f := newFabric(b, size)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	seq := make([]uint64, size)
	publish := func(i int) time.Duration {
		seq[i]++
		signed, err := noderecord.Sign(f.record(f.nodes[i], seq[i], nil), f.nodes[i].id.Key)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := f.nodes[i].dht.Publish(ctx, signed); err != nil {
			b.Fatalf("node %d publishes: %v", i, err)
		}
		return time.Since(start)
	}
	for i := range size {
		publish(i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var pub, lookup, prop []time.Duration
	for b.Loop() {
		i, j := rng.IntN(size), rng.IntN(size-1)
		if j >= i {
			j++
		}
		p := publish(i)
		start := time.Now()
		r, err := f.nodes[j].dht.Lookup(ctx, f.nodes[i].h.ID())
		if err != nil {
			b.Fatalf("node %d looks up node %d: %v", j, i, err)
		}
		if r.Seq != seq[i] {
			b.Fatalf("node %d found seq %d of node %d, want %d", j, r.Seq, i, seq[i])
		}
		l := time.Since(start)
		pub, lookup, prop = append(pub, p), append(lookup, l), append(prop, p+l)
	}
	report(b, "publish", pub)
	report(b, "lookup", lookup)
	report(b, "propagation", prop)
}

// report adds the p50 and p99 of samples to the benchmark's results, in
// milliseconds.
func report(b *testing.B, what string, samples []time.Duration) {
	slices.Sort(samples)
	pct := func(p float64) float64 {
		return float64(samples[int(p*float64(len(samples)-1)+0.5)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), what+"-p50-ms")
	b.ReportMetric(pct(0.99), what+"-p99-ms")
}
