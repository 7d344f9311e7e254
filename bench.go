package mycel

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mycelfabric/mycel/policies"
	"github.com/mycelfabric/mycel/securityplane/envelope"
	"github.com/mycelfabric/mycel/securityplane/policy"
	"github.com/mycelfabric/mycel/workloadplane/owner"
	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
	"github.com/mycelfabric/mycel/workloadplane/runtime/sim"
	"github.com/mycelfabric/mycel/workloadplane/sched"
)

// BenchConfig configures `mycel bench`, a placement simulation in one
// process: simulated nodes (sim runtime, real bidders evaluating the real
// placement policy) answer real owners over a real embedded NATS server
// with signed envelopes. Only the containers and the machines are
// simulated.
type BenchConfig struct {
	// Nodes are the fabric sizes to simulate; default 10, 100, 1000.
	Nodes []int
	// Pods is how many pods to place at each size; default 1000.
	Pods int
	// Replicas is the size of each workload (pods sharing an owner);
	// default 10.
	Replicas int
	// Sample is d; zero means sched's default (3).
	Sample int
	// Owners is how many owners place at once; default 4 per CPU.
	Owners int
}

// BenchResult is one fabric size's outcome.
type BenchResult struct {
	Nodes    int
	Placed   int
	Unplaced int
	Duration time.Duration
	// PerSecond is placements per second; MessagesPerPlacement counts
	// tenders, bids, declines, awards and confirms.
	PerSecond            float64
	MessagesPerPlacement float64
	// P50 and P99 are the latencies of one negotiation.
	P50, P99 time.Duration
	// MaxPerNode is the most pods of one workload that landed on one node
	// (1 is a perfect spread while workloads are smaller than the fabric).
	MaxPerNode int
}

// Bench runs the placement simulation at each size.
func Bench(ctx context.Context, cfg BenchConfig) ([]BenchResult, error) {
	if len(cfg.Nodes) == 0 {
		cfg.Nodes = []int{10, 100, 1000}
	}
	if cfg.Pods == 0 {
		cfg.Pods = 1000
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 10
	}
	if cfg.Owners == 0 {
		cfg.Owners = 4 * runtime.GOMAXPROCS(0)
	}
	if cfg.Pods < 1 || cfg.Replicas < 1 || cfg.Owners < 1 {
		return nil, errors.New("bench: pods, replicas and owners must be positive")
	}
	engine, err := policy.Load(ctx, policies.Default, "policies (embedded)")
	if err != nil {
		return nil, err
	}
	var out []BenchResult
	for _, n := range cfg.Nodes {
		if n < 1 {
			return nil, fmt.Errorf("bench: %d nodes", n)
		}
		r, err := benchOnce(ctx, cfg, n, engine)
		if err != nil {
			return nil, fmt.Errorf("bench with %d nodes: %w", n, err)
		}
		out = append(out, r)
	}
	return out, nil
}

type simNode struct {
	name, peer, zone string
	rt               *sim.Runtime
	placer           *sched.Placer
}

// facts are what a simulated node bids with: its capacity and the limits
// of the containers its sim runtime runs.
func (s *simNode) facts() (sched.Facts, error) {
	f := sched.Facts{Node: s.name, Zone: s.zone, Labels: map[string]string{corev1.LabelTopologyZone: s.zone},
		Allocatable: sched.Resources{MilliCPU: s.rt.MilliCPU, MemoryBytes: s.rt.MemoryBytes, Pods: defaultMaxPods}, Bound: map[types.UID]bool{}}
	cs, err := s.rt.List(context.Background(), nil)
	if err != nil {
		return f, err
	}
	f.Used.MilliCPU, f.Used.MemoryBytes = s.rt.Used()
	for _, c := range cs {
		if c.State == rt.StateRunning {
			f.Used.Pods++
			f.Bound[types.UID(c.Labels[rt.LabelPodUID])] = true
		}
	}
	return f, nil
}

func benchOnce(ctx context.Context, cfg BenchConfig, size int, engine *policy.Engine) (BenchResult, error) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		return BenchResult{}, err
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		return BenchResult{}, errors.New("embedded NATS did not start")
	}
	conns := make([]*nats.Conn, 2*runtime.GOMAXPROCS(0))
	for i := range conns {
		if conns[i], err = nats.Connect(ns.ClientURL()); err != nil {
			return BenchResult{}, err
		}
		defer conns[i].Close()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	members := map[peer.ID]bool{}
	opener := &envelope.Opener{Known: func(id peer.ID) bool { return members[id] }, Replay: 16 * cfg.Pods}
	ids := make([]string, size)
	byPeer, byName := map[string]*simNode{}, map[string]*simNode{}
	cands := make([]sched.Candidate, size)
	var serving sync.WaitGroup
	for i := range size {
		key, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			return BenchResult{}, err
		}
		id, _ := peer.IDFromPrivateKey(key)
		s := &simNode{name: fmt.Sprintf("sim-%04d", i), peer: id.String(), zone: fmt.Sprintf("zone-%d", i%3), rt: sim.New(4000, 8<<30)}
		members[id] = true
		bidder, err := sched.NewBidder(sched.BidderConfig{Facts: s.facts, Policy: placementPolicy{engine}})
		if err != nil {
			return BenchResult{}, err
		}
		tr := &sched.BusTransport{Conn: conns[i%len(conns)], Key: key, Self: s.peer, Opener: opener, Bidder: bidder}
		if s.placer, err = sched.NewPlacer(sched.PlacerConfig{Self: s.peer, Requester: "spiffe://bench/node/" + s.peer, Transport: tr, Sample: cfg.Sample}); err != nil {
			return BenchResult{}, err
		}
		serving.Add(1)
		go func() {
			defer serving.Done()
			tr.Serve(ctx)
		}()
		ids[i], byPeer[s.peer], byName[s.name] = s.peer, s, s
		cands[i] = sched.Candidate{Node: s.name, Peer: s.peer, Zone: s.zone}
	}
	for _, c := range conns {
		if err := c.Flush(); err != nil {
			return BenchResult{}, err
		}
	}

	workloads := (cfg.Pods + cfg.Replicas - 1) / cfg.Replicas
	work := make(chan int)
	var placed, unplaced, messages atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	maxPerNode := 0
	start := time.Now()
	var owners sync.WaitGroup
	for range cfg.Owners {
		owners.Add(1)
		go func() {
			defer owners.Done()
			for w := range work {
				key := fmt.Sprintf("bench-w%05d", w)
				owner := byPeer[owner.Of(key, ids)]
				spread := sched.Spread{Nodes: map[string]int{}, Zones: map[string]int{}}
				for r := 0; r < cfg.Replicas && w*cfg.Replicas+r < cfg.Pods; r++ {
					pod := benchPod(key, r)
					t0 := time.Now()
					o := owner.placer.Place(ctx, pod, cands, spread)
					d := time.Since(t0)
					messages.Add(int64(o.Messages))
					if o.Node == "" {
						unplaced.Add(1)
						continue
					}
					winner := byName[o.Node]
					id, err := winner.rt.Create(ctx, rt.Spec{Name: pod.Name, Image: "sim", MilliCPU: 10, MemoryBytes: 16 << 20,
						Labels: map[string]string{rt.LabelPodUID: string(pod.UID), rt.LabelNode: winner.name}})
					if err == nil {
						err = winner.rt.Start(ctx, id)
					}
					if err != nil {
						unplaced.Add(1)
						continue
					}
					placed.Add(1)
					spread.Nodes[o.Node]++
					spread.Zones[winner.zone]++
					mu.Lock()
					lat = append(lat, d)
					maxPerNode = max(maxPerNode, spread.Nodes[o.Node])
					mu.Unlock()
				}
			}
		}()
	}
	for w := range workloads {
		work <- w
	}
	close(work)
	owners.Wait()
	elapsed := time.Since(start)
	cancel()
	serving.Wait()

	res := BenchResult{Nodes: size, Placed: int(placed.Load()), Unplaced: int(unplaced.Load()), Duration: elapsed, MaxPerNode: maxPerNode}
	if res.Placed > 0 {
		res.PerSecond = float64(res.Placed) / elapsed.Seconds()
		res.MessagesPerPlacement = float64(messages.Load()) / float64(res.Placed+res.Unplaced)
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		res.P50, res.P99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return res, nil
}

func benchPod(workload string, replica int) *corev1.Pod {
	name := fmt.Sprintf("%s-%d", workload, replica)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "bench", UID: types.UID(name)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "sim", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}}}}},
	}
}
