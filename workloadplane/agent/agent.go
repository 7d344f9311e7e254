package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/mycelfabric/mycel/machineplane/host"
	"github.com/mycelfabric/mycel/machineplane/noderecord"
	"github.com/mycelfabric/mycel/workloadplane/objects"
	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// Client is the object access the agent needs.
type Client interface {
	Get(ctx context.Context, obj objects.Object) error
	List(ctx context.Context, list runtime.Object, namespace string, sel labels.Selector) error
	Create(ctx context.Context, obj objects.Object) error
	Update(ctx context.Context, obj objects.Object) error
	UpdateStatus(ctx context.Context, obj objects.Object) error
	Delete(ctx context.Context, obj objects.Object, gracePeriodSeconds *int64) error
	Record(ctx context.Context, obj objects.Object, component, eventType, reason, message string) error
	Notify(ctx context.Context, resource string, kick chan<- struct{})
}

// Config configures an Agent.
type Config struct {
	// NodeName is the node whose pods this agent runs.
	NodeName string
	// NodeIP is reported as the pods' hostIP.
	NodeIP string
	// TrustDomain and PeerID label the containers this agent creates; it
	// adopts only containers with both (and those of versions that did not
	// label them yet).
	TrustDomain, PeerID string
	// Client reads and writes objects.
	Client Client
	// Runtime runs containers.
	Runtime rt.Runtime
	// Record returns the node's record, signed now with current facts;
	// the Node object's labels, capacity and versions are derived from
	// it. Required for Heartbeat.
	Record func(ctx context.Context) (*noderecord.Record, error)
	// Machine describes the host beyond the record (kernel, OS image,
	// host name) for the Node's status.
	Machine host.Machine
	// HeartbeatInterval is how often RunHeartbeat checks the Node
	// object; zero means 10s.
	HeartbeatInterval time.Duration
	// Prober runs probes and hook handlers; nil probes for real: exec
	// through the runtime, HTTP, TCP and gRPC to the pod's IP.
	Prober Prober
	// Peers reaches other nodes' agents, for the logs of their pods; nil
	// serves only this node's.
	Peers Dialer
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Resync is how often every pod is checked against the runtime even
	// without changes; zero means one second.
	Resync time.Duration
	// Parallelism bounds how many pods sync at once; zero means 4.
	Parallelism int
	// VolumeDir keeps the pods' emptyDir volumes, on disk.
	VolumeDir string
	// MemoryDir keeps the volumes that must not reach a disk: ConfigMap,
	// Secret, downward API and projected volumes, and emptyDirs of medium
	// Memory. It should be on a tmpfs (/dev/shm). Pods with volumes fail to
	// start while VolumeDir or MemoryDir is empty.
	MemoryDir string
	// HostUsage reads what the whole machine uses, for its Node's
	// metrics; nil reads /proc.
	HostUsage func() (HostUsage, error)
	// BackoffBase is the first restart delay of a crashing container,
	// doubling up to BackoffMax; zero means 10s and 5m as in Kubernetes.
	BackoffBase, BackoffMax time.Duration
}

const component = "mycel-agent"

// Agent runs the pods bound to one node.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{}

	mu          sync.Mutex
	health      error                  // last runtime error, nil when healthy
	waits       map[string]waitState   // why a container cannot start yet, by pod UID/container
	terminating map[string]bool        // pod UIDs whose containers are being stopped
	stopping    sync.WaitGroup         // terminations in flight
	volumes     map[string]string      // digest of each projected volume's content, by directory
	probes      map[string]*probeState // by pod UID/container/kind
	killing     map[string]bool        // container IDs being stopped for a failed probe
	probing     sync.WaitGroup         // probes in flight

	usageMu              sync.Mutex   // one measurement at a time
	usagePrev, usageLast *usageSample // the samples of the last measurement
}

// New checks cfg and returns an agent.
func New(cfg Config) (*Agent, error) {
	if cfg.NodeName == "" || cfg.Client == nil || cfg.Runtime == nil {
		return nil, errors.New("agent: NodeName, Client and Runtime are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Resync == 0 {
		cfg.Resync = time.Second
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = 4
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = 10 * time.Second
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 5 * time.Minute
	}
	if cfg.Prober == nil {
		cfg.Prober = netProber{runtime: cfg.Runtime}
	}
	return &Agent{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1),
		waits: map[string]waitState{}, terminating: map[string]bool{}, volumes: map[string]string{},
		probes: map[string]*probeState{}, killing: map[string]bool{}}, nil
}

// Healthy returns nil if the runtime answered the last sync, else why not.
func (a *Agent) Healthy() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.health
}

// Run syncs until ctx is done: on every pod change and every Resync.
func (a *Agent) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.cfg.Client.Notify(ctx, "pods", a.kick)
	}()
	t := time.NewTicker(a.cfg.Resync)
	defer t.Stop()
	for {
		a.Sync(ctx)
		select {
		case <-ctx.Done():
			wg.Wait()
			a.stopping.Wait()
			a.probing.Wait()
			return
		case <-a.kick:
		case <-t.C:
		}
	}
}

// Kick makes Run sync now.
func (a *Agent) Kick() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Sync brings every pod bound to this node in line with the runtime once.
func (a *Agent) Sync(ctx context.Context) {
	var list corev1.PodList
	if err := a.cfg.Client.List(ctx, &list, "", nil); err != nil {
		a.log.Warn("list pods", "err", err)
		return
	}
	ctrs, err := a.cfg.Runtime.List(ctx, map[string]string{rt.LabelNode: a.cfg.NodeName})
	if ctx.Err() != nil {
		return
	}
	a.mu.Lock()
	a.health = err
	a.mu.Unlock()
	if err != nil {
		a.log.Warn("container runtime unavailable; pods keep their last status until it returns", "err", err)
		return
	}
	byPod := map[string][]rt.Container{}
	for _, c := range ctrs {
		if !a.owns(c.Labels) {
			continue // another fabric's node of the same name
		}
		uid := c.Labels[rt.LabelPodUID]
		byPod[uid] = append(byPod[uid], c)
	}
	sandboxes := map[string]*rt.Sandbox{}
	if sbs, ok := a.cfg.Runtime.(rt.Sandboxes); ok {
		list, err := sbs.ListSandboxes(ctx, map[string]string{rt.LabelNode: a.cfg.NodeName})
		if err != nil {
			a.log.Warn("container runtime unavailable; pods keep their last status until it returns", "err", err)
			return
		}
		for i := range list {
			if a.owns(list[i].Labels) {
				sandboxes[list[i].Labels[rt.LabelPodUID]] = &list[i]
			}
		}
	}
	mine := map[string]bool{}
	// Pods sync in parallel (bounded): starting a container costs the
	// runtime hundreds of milliseconds, mostly waiting on the OCI runtime.
	sem := make(chan struct{}, a.cfg.Parallelism)
	var wg sync.WaitGroup
	for i := range list.Items {
		pod := &list.Items[i]
		if pod.Spec.NodeName != a.cfg.NodeName {
			continue
		}
		mine[string(pod.UID)] = true
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := a.syncPod(ctx, pod, byPod[string(pod.UID)], sandboxes[string(pod.UID)]); err != nil && ctx.Err() == nil {
				a.log.Warn("sync pod", "pod", pod.Namespace+"/"+pod.Name, "err", err)
			}
		}()
	}
	wg.Wait()
	a.mu.Lock()
	for k := range a.waits {
		if uid, _, _ := strings.Cut(k, "/"); !mine[uid] {
			delete(a.waits, k)
		}
	}
	for k := range a.probes {
		if uid, _, _ := strings.Cut(k, "/"); !mine[uid] {
			delete(a.probes, k)
		}
	}
	a.mu.Unlock()
	a.removeVolumes(mine)
	// Containers whose pod is gone (deleted while this node was down, or
	// bound elsewhere) are removed.
	for uid, cs := range byPod {
		if mine[uid] {
			continue
		}
		for _, c := range cs {
			a.log.Info("removing orphan container", "container", c.Name)
			if err := a.cfg.Runtime.Remove(ctx, c.ID); err != nil {
				a.log.Warn("remove orphan", "container", c.Name, "err", err)
			}
		}
	}
	for uid, sb := range sandboxes {
		if !mine[uid] {
			a.log.Info("removing orphan pod sandbox", "sandbox", sb.Name)
			if err := a.cfg.Runtime.(rt.Sandboxes).RemoveSandbox(ctx, sb.ID); err != nil {
				a.log.Warn("remove orphan sandbox", "sandbox", sb.Name, "err", err)
			}
		}
	}
}

// owns reports whether a container or sandbox with labels is this agent's:
// of its trust domain and peer, or made before containers carried them
// (adopted by node name, as then).
func (a *Agent) owns(labels map[string]string) bool {
	td, ok := labels[rt.LabelTrustDomain]
	return !ok || (td == a.cfg.TrustDomain && labels[rt.LabelPeerID] == a.cfg.PeerID)
}

// attempts groups a pod's containers by spec container name, ordered by
// attempt number.
func attempts(ctrs []rt.Container) map[string][]rt.Container {
	out := map[string][]rt.Container{}
	for _, c := range ctrs {
		name := c.Labels[rt.LabelContainer]
		out[name] = append(out[name], c)
	}
	for _, l := range out {
		sort.Slice(l, func(i, j int) bool { return attemptOf(l[i]) < attemptOf(l[j]) })
	}
	return out
}

func attemptOf(c rt.Container) int {
	n, _ := strconv.Atoi(c.Labels[rt.LabelAttempt])
	return n
}

// startTermination stops a deleted pod in the background, so one pod's
// grace period does not hold up the others.
func (a *Agent) startTermination(ctx context.Context, pod *corev1.Pod, ctrs []rt.Container, sb *rt.Sandbox) {
	uid := string(pod.UID)
	a.mu.Lock()
	if a.terminating[uid] {
		a.mu.Unlock()
		return
	}
	a.terminating[uid] = true
	a.mu.Unlock()
	a.stopping.Add(1)
	go func() {
		defer a.stopping.Done()
		if err := a.terminate(ctx, pod, ctrs, sb); err != nil && ctx.Err() == nil {
			a.log.Warn("terminate pod", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		}
		a.mu.Lock()
		delete(a.terminating, uid)
		a.mu.Unlock()
	}()
}

// terminate stops a deleted pod's containers (each after its preStop
// hook, within the grace period), removes them and its sandbox, then
// removes the pod.
func (a *Agent) terminate(ctx context.Context, pod *corev1.Pod, ctrs []rt.Container, sb *rt.Sandbox) error {
	grace := 30 * time.Second
	if pod.DeletionGracePeriodSeconds != nil {
		grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	}
	ps := a.podSync(ctx, pod, sb)
	var wg sync.WaitGroup
	errs := make([]error, len(ctrs))
	for i, c := range ctrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.State == rt.StateRunning {
				if err := a.stopContainer(ps, specOf(pod, c.Labels[rt.LabelContainer]), c.ID, grace); err != nil {
					errs[i] = err
					return
				}
			}
			errs[i] = a.cfg.Runtime.Remove(ctx, c.ID)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop containers of deleted pod: %w", err)
	}
	if sb != nil {
		if err := a.cfg.Runtime.(rt.Sandboxes).RemoveSandbox(ctx, sb.ID); err != nil {
			return fmt.Errorf("remove the sandbox of deleted pod: %w", err)
		}
	}
	zero := int64(0)
	return a.cfg.Client.Delete(ctx, pod, &zero)
}

// specOf returns the pod's container (app or init) named name, or nil.
func specOf(pod *corev1.Pod, name string) *corev1.Container {
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range cs {
			if cs[i].Name == name {
				return &cs[i]
			}
		}
	}
	return nil
}

// event records an event once per (pod, reason, message) until it changes.
func (a *Agent) event(ctx context.Context, pod *corev1.Pod, typ, reason, msg string) {
	if err := a.cfg.Client.Record(ctx, pod, component, typ, reason, msg); err != nil {
		a.log.Debug("record event", "err", err)
	}
}
