// Package schedsim simulates placement at scale in one process: simulated
// nodes run real bidders that evaluate the real placement policy and
// answer real owners over a real embedded NATS server, with signed
// envelopes. Only the machines are simulated: a node's capacity is a
// number and the pods placed on it are kept in memory, accounted in the
// same sched.Ledger as a real node's. `mycel bench` runs it; results are in
// docs/benchmarks.md.
package schedsim

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mycelfabric/mycel/machineplane/bus"
	"github.com/mycelfabric/mycel/policies"
	"github.com/mycelfabric/mycel/securityplane/envelope"
	"github.com/mycelfabric/mycel/securityplane/policy"
	"github.com/mycelfabric/mycel/workloadplane/owner"
	"github.com/mycelfabric/mycel/workloadplane/sched"
)

// Config configures a simulation.
type Config struct {
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

// Result is one fabric size's outcome.
type Result struct {
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
	// CPUPerPlacement is the process's CPU time (user and system, every
	// thread: owners, bidders and the NATS server) while placing, divided
	// by the placements tried.
	CPUPerPlacement time.Duration
}

// Simulated machines: 4 CPUs, 8 GiB and a kubelet's 110 pods each.
var machine = sched.Resources{MilliCPU: 4000, MemoryBytes: 8 << 30, Pods: 110}

// Run runs the simulation at each size.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
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
		return nil, errors.New("schedsim: pods, replicas and owners must be positive")
	}
	engine, err := policy.Load(ctx, policies.Default, "policies (embedded)")
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, n := range cfg.Nodes {
		if n < 1 {
			return nil, fmt.Errorf("schedsim: %d nodes", n)
		}
		r, err := runOnce(ctx, cfg, n, engine)
		if err != nil {
			return nil, fmt.Errorf("schedsim with %d nodes: %w", n, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// node is a simulated node: its bidder's facts are its capacity and the
// pods placed on it, in its ledger.
type node struct {
	name, peer, zone string
	placer           *sched.Placer
	ledger           *sched.Ledger
}

func (s *node) facts() (sched.Facts, error) {
	f := sched.Facts{Node: s.name, Zone: s.zone, Labels: map[string]string{corev1.LabelTopologyZone: s.zone}, Allocatable: machine}
	f.Used, f.Bound, _ = s.ledger.Usage()
	return f, nil
}

// bind binds pod to the node, as the owner does once the winner confirmed
// (its reservation held the room).
func (s *node) bind(pod *corev1.Pod) {
	p := pod.DeepCopy()
	p.Spec.NodeName = s.name
	s.ledger.Observe(p)
}

func runOnce(ctx context.Context, cfg Config, size int, engine *policy.Engine) (Result, error) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		return Result{}, err
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		return Result{}, errors.New("embedded NATS did not start")
	}
	conns := make([]*nats.Conn, 2*runtime.GOMAXPROCS(0))
	for i := range conns {
		if conns[i], err = nats.Connect(ns.ClientURL()); err != nil {
			return Result{}, err
		}
		defer conns[i].Close()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	members := map[peer.ID]bool{}
	known := func(id peer.ID) bool { return members[id] }
	ids := make([]string, size)
	byPeer, byName := map[string]*node{}, map[string]*node{}
	cands := make([]sched.Candidate, size)
	var serving sync.WaitGroup
	for i := range size {
		key, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			return Result{}, err
		}
		id, _ := peer.IDFromPrivateKey(key)
		s := &node{name: fmt.Sprintf("sim-%04d", i), peer: id.String(), zone: fmt.Sprintf("zone-%d", i%3)}
		s.ledger = sched.NewLedger(s.name)
		members[id] = true
		bidder, err := sched.NewBidder(sched.BidderConfig{Facts: s.facts, Policy: sched.OPA(engine)})
		if err != nil {
			return Result{}, err
		}
		tr := &sched.BusTransport{Conn: bus.NATS(conns[i%len(conns)]), Key: key, Self: s.peer, Opener: &envelope.Opener{Known: known}, Bidder: bidder}
		if s.placer, err = sched.NewPlacer(sched.PlacerConfig{Self: s.peer, Requester: "spiffe://schedsim/node/" + s.peer, Transport: tr, Sample: cfg.Sample}); err != nil {
			return Result{}, err
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
			return Result{}, err
		}
	}

	workloads := (cfg.Pods + cfg.Replicas - 1) / cfg.Replicas
	work := make(chan int)
	var placed, unplaced, messages atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	maxPerNode := 0
	cpu0 := processCPU()
	start := time.Now()
	var owners sync.WaitGroup
	for range cfg.Owners {
		owners.Add(1)
		go func() {
			defer owners.Done()
			for w := range work {
				key := fmt.Sprintf("schedsim-w%05d", w)
				own := byPeer[owner.Of(key, ids)]
				spread := sched.Spread{Nodes: map[string]int{}, Zones: map[string]int{}}
				for r := 0; r < cfg.Replicas && w*cfg.Replicas+r < cfg.Pods; r++ {
					pod := simPod(key, r)
					t0 := time.Now()
					o := own.placer.Place(ctx, pod, cands, spread)
					d := time.Since(t0)
					messages.Add(int64(o.Messages))
					if o.Node == "" {
						unplaced.Add(1)
						continue
					}
					byName[o.Node].bind(pod)
					placed.Add(1)
					spread.Nodes[o.Node]++
					spread.Zones[byName[o.Node].zone]++
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
	cpu := processCPU() - cpu0
	cancel()
	serving.Wait()

	res := Result{Nodes: size, Placed: int(placed.Load()), Unplaced: int(unplaced.Load()), Duration: elapsed, MaxPerNode: maxPerNode}
	if res.Placed > 0 {
		res.PerSecond = float64(res.Placed) / elapsed.Seconds()
		res.MessagesPerPlacement = float64(messages.Load()) / float64(res.Placed+res.Unplaced)
		res.CPUPerPlacement = cpu / time.Duration(res.Placed+res.Unplaced)
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		res.P50, res.P99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return res, nil
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func simPod(workload string, replica int) *corev1.Pod {
	name := fmt.Sprintf("%s-%d", workload, replica)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "schedsim", UID: types.UID(name)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "sim", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}}}}},
	}
}
