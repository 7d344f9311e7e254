package mycel

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"

	libp2phost "github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mycelfabric/mycel/machineplane/bus"
	"github.com/mycelfabric/mycel/machineplane/dht"
	"github.com/mycelfabric/mycel/machineplane/discovery"
	"github.com/mycelfabric/mycel/machineplane/host"
	"github.com/mycelfabric/mycel/machineplane/membership"
	"github.com/mycelfabric/mycel/policies"
	"github.com/mycelfabric/mycel/securityplane/identity"
	"github.com/mycelfabric/mycel/securityplane/policy"
	"github.com/mycelfabric/mycel/workloadplane/agent"
	"github.com/mycelfabric/mycel/workloadplane/controller"
	"github.com/mycelfabric/mycel/workloadplane/objects"
	"github.com/mycelfabric/mycel/workloadplane/owner"
	"github.com/mycelfabric/mycel/workloadplane/replica"
	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
	"github.com/mycelfabric/mycel/workloadplane/runtime/podman"
	"github.com/mycelfabric/mycel/workloadplane/runtime/sim"
	"github.com/mycelfabric/mycel/workloadplane/sched"
	"github.com/mycelfabric/mycel/workloadplane/store"
)

// Files a node keeps in its data dir for scripts and operators.
const (
	PIDFile   = "mycel.pid"
	P2PFile   = "p2p.addrs"
	URLFile   = "api.url"
	StoreFile = "state.db"
	// LockFile is locked (flock) by the node using the data dir.
	LockFile = "mycel.lock"
)

// Node is a running Mycel node: an ordered list of components (see
// components), each set up by its start and run by its run.
type Node struct {
	cfg       Config
	log       *slog.Logger
	lifecycle lifecycle
	reg       *prometheus.Registry
	machine   host.Machine
	capacity  corev1.ResourceList // what the node offers (agent.Capacity)
	apiHost   string              // the host of Config.APIAddr

	// The parts, in the order their components start.
	lock      *os.File
	id        *host.Identity
	policy    *policy.Engine
	p2p       libp2phost.Host
	creds     *identity.Source
	store     *store.Store
	dht       *dht.DHT
	join      joinState
	records   *discovery.Publisher
	bus       *bus.Bus
	rejected  *prometheus.CounterVec // control messages every protocol drops
	members   *membership.Service
	owners    *owner.Table
	repl      *replica.Replicator
	objs      *objects.Objects
	runtime   rt.Runtime
	agent     *agent.Agent
	streams   *host.Listener // the agent's streaming server's connections
	ctrl      *controller.Manager
	nodes     *controller.NodeLifecycle
	transport *sched.BusTransport
	pods      *sched.Ledger // the pods bound to this node, for its bidder
	scheduler *sched.Scheduler
	api       *api
}

// components are the node's parts in the order they start (and, reversed,
// close). Each run starts once all have started.
func (n *Node) components() []component {
	return []component{
		{name: "data dir", start: n.lockDataDir, close: func() error { return n.lock.Close() }},
		{name: "node key", start: n.loadKey},
		{name: "policies", start: n.loadPolicies},
		{name: "libp2p host", start: n.startHost, close: func() error { return n.p2p.Close() }},
		{name: "SVID", start: n.openIdentity, run: func(ctx context.Context) { n.creds.Rotate(ctx) }, close: func() error { n.creds.Close(); return nil }},
		{name: "store", start: n.openStore, close: func() error { return n.store.Close() }},
		{name: "DHT", start: n.startDHT, run: n.retryJoin, close: func() error { return n.dht.Close() }},
		{name: "bus", start: n.startBus, run: n.watchRoutes, close: func() error { n.bus.Close(); return nil }},
		{name: "membership", start: n.startMembership, run: n.runMembership},
		{name: "ownership", start: n.startOwnership, run: n.settle},
		{name: "replication", start: n.startReplication, run: n.runReplication},
		{name: "objects", start: n.startObjects, run: func(ctx context.Context) { n.objs.ServeCustomResources(ctx, n.log.With("component", "objects")) }},
		{name: "container runtime", start: n.startRuntime},
		{name: "agent", start: n.startAgent, run: n.runAgent},
		{name: "node status", start: noStart, run: func(ctx context.Context) { n.agent.RunHeartbeat(ctx) }},
		{name: "logs for other nodes", start: noStart, run: n.serveLogs},
		{name: "streams", start: n.startStreams, run: n.serveStreams, close: func() error { return n.streams.Close() }},
		{name: "controllers", start: n.startControllers, run: func(ctx context.Context) { n.ctrl.Run(ctx) }},
		{name: "node lifecycle", start: n.startNodeLifecycle, run: func(ctx context.Context) { n.nodes.Run(ctx) }},
		{name: "bidder", start: n.startBidder, run: n.serveBids},
		{name: "scheduler", start: n.startScheduler, run: func(ctx context.Context) { n.scheduler.Run(ctx) }},
		{name: "API", start: n.startAPI, run: n.serveAPI, close: n.closeAPI},
		{name: "node record", start: n.signRecord, run: func(ctx context.Context) { n.records.Run(ctx, discovery.RecordRefresh, n.log) }},
		{name: "files", start: n.writeFiles, close: n.removeFiles},
	}
}

func noStart(context.Context) error { return nil }

// Start starts a node and returns once its API is listening. On error,
// everything it had started is closed again.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.Name), reg: prometheus.NewRegistry()}
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.machine = host.Measure()
	n.capacity = agent.Capacity(n.machine, cfg.Capacity)
	n.apiHost, _, _ = net.SplitHostPort(cfg.APIAddr)
	n.lifecycle.components = n.components()
	if err := n.lifecycle.start(ctx); err != nil {
		return nil, err
	}
	n.lifecycle.run()
	n.log.Info("node started", "api", n.URL(), "peer", n.PeerID(), "p2p", n.P2PAddrs(), "trustDomain", n.creds.Bundle().TrustDomain().Name(), "policies", n.policy.Files())
	return n, nil
}

// Close stops the node: every run stops (the API first answers what it
// accepted), then the components close in reverse order of their start.
// Containers keep running; a restarted node re-adopts them. It is
// idempotent.
func (n *Node) Close() error { return n.lifecycle.close() }

// URL is the API's base URL.
func (n *Node) URL() string { return n.api.url }

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// PeerID is the node's libp2p peer ID.
func (n *Node) PeerID() string { return n.id.ID.String() }

// lockDataDir takes the data dir for this node, before anything reads or
// writes there: a second node started on a data dir in use fails here,
// leaving the running one alone.
func (n *Node) lockDataDir(context.Context) error {
	if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(n.cfg.DataDir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		holder := "another mycel node"
		if pid, err := os.ReadFile(filepath.Join(n.cfg.DataDir, PIDFile)); err == nil {
			holder += " (pid " + strings.TrimSpace(string(pid)) + ")"
		}
		return fmt.Errorf("data dir %s is in use by %s: stop it first, or give this node another --data-dir", n.cfg.DataDir, holder)
	}
	n.lock = f
	return nil
}

func (n *Node) loadKey(context.Context) (err error) {
	n.id, err = host.LoadOrCreateIdentity(n.cfg.DataDir)
	return err
}

func (n *Node) loadPolicies(ctx context.Context) (err error) {
	if n.cfg.PolicyDir != "" {
		n.policy, err = policy.LoadDir(ctx, n.cfg.PolicyDir)
	} else {
		n.policy, err = policy.Load(ctx, policies.Default, "policies (embedded)")
	}
	return err
}

func (n *Node) openIdentity(ctx context.Context) (err error) {
	n.creds, err = identity.Open(ctx, identity.Config{DataDir: n.cfg.DataDir, CADir: n.cfg.CADir, Join: n.cfg.Join,
		PeerID: n.PeerID(), Name: n.cfg.Name, APIHost: n.apiHost, Host: n.p2p, Addrs: n.P2PAddrs(), TTL: n.cfg.SVIDTTL,
		Logger: n.log.With("component", "identity")})
	return err
}

func (n *Node) openStore(context.Context) (err error) {
	n.store, err = store.Open(filepath.Join(n.cfg.DataDir, StoreFile), store.Options{Node: n.PeerID(), Now: n.cfg.Now,
		// The replicator starts before anything writes to the store.
		OnLocalWrite: func(r store.Record) { n.repl.Enqueue(r) }})
	return err
}

// startObjects opens the object layer and makes sure the default namespace
// exists.
func (n *Node) startObjects(ctx context.Context) error {
	n.objs = objects.New(n.repl.Routed(n.owners.Of), objects.Config{Now: n.cfg.Now, Sealer: n.creds.DataKeys()})
	err := n.objs.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: metav1.NamespaceDefault}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	// The CRDs already stored are served from the start.
	if err := n.objs.SyncCustom(ctx); err != nil {
		n.log.Warn("serve custom resources", "err", err)
	}
	return objects.RegisterPodMetrics(n.reg, n.objs)
}

func (n *Node) startRuntime(ctx context.Context) error {
	r, err := n.containerRuntime(ctx)
	if err != nil {
		return err
	}
	n.runtime, err = rt.Metered(r, n.reg)
	return err
}

func (n *Node) containerRuntime(ctx context.Context) (rt.Runtime, error) {
	if n.cfg.Runtime != nil {
		return n.cfg.Runtime, nil
	}
	if n.cfg.RuntimeName == RuntimeSim {
		n.log.Warn("runtime sim: containers are simulated, nothing runs (scale simulations only)")
		return sim.New(n.capacity.Cpu().MilliValue(), n.capacity.Memory().Value()), nil
	}
	return podman.Open(ctx, n.cfg.PodmanSocket, n.log.With("component", "podman"))
}

func (n *Node) startAgent(context.Context) (err error) {
	nodeIP := n.apiHost
	if ip := net.ParseIP(nodeIP); ip == nil || ip.IsUnspecified() {
		nodeIP = "127.0.0.1"
	}
	// Volumes that must not reach a disk (Secrets among them) go to a
	// tmpfs when the machine has one.
	memDir := filepath.Join(n.cfg.DataDir, "pods-memory")
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		memDir = filepath.Join("/dev/shm", "mycel", n.PeerID())
	} else {
		n.log.Warn("no /dev/shm: Secret and ConfigMap volumes are written under the data dir, on disk", "dir", memDir)
	}
	n.agent, err = agent.New(agent.Config{NodeName: n.cfg.Name, NodeIP: nodeIP, TrustDomain: n.creds.Bundle().TrustDomain().Name(), PeerID: n.PeerID(),
		Client: n.objs, Runtime: n.runtime, VolumeDir: filepath.Join(n.cfg.DataDir, "pods"), MemoryDir: memDir,
		Record: n.records.Sign, Machine: n.machine, HeartbeatInterval: n.cfg.HeartbeatInterval, Now: n.cfg.Now, Peers: dialer{n},
		Logger: n.log.With("component", "agent")})
	return err
}

// runAgent runs the pods bound to this node, once the node has settled: a
// node back from the dead must first learn which of its pods were deleted
// while it was away, or its status writes would bring them back.
func (n *Node) runAgent(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-n.owners.Done():
	}
	n.agent.Run(ctx)
}

func (n *Node) startControllers(context.Context) (err error) {
	n.ctrl, err = controller.New(controller.Config{Client: n.objs, Owns: n.owners.Owns, Now: n.cfg.Now,
		Metrics: &agent.FabricUsage{Client: n.objs, Transport: n.streamTransport()},
		Logger:  n.log.With("component", "controller")})
	return err
}

func (n *Node) startNodeLifecycle(context.Context) (err error) {
	n.nodes, err = controller.NewNodeLifecycle(controller.NodeLifecycleConfig{Client: n.objs, Liveness: liveness{n.PeerID(), n.members},
		Owns: n.owners.Owns, HeartbeatInterval: n.cfg.HeartbeatInterval, Now: n.cfg.Now,
		Logger: n.log.With("component", "node-lifecycle")})
	return err
}

// writeFiles leaves the node's API URL, PID and libp2p addresses in its
// data dir, for scripts and operators.
func (n *Node) writeFiles(context.Context) error {
	for name, content := range map[string]string{URLFile: n.URL(), PIDFile: strconv.Itoa(os.Getpid()), P2PFile: strings.Join(n.P2PAddrs(), "\n")} {
		if err := os.WriteFile(filepath.Join(n.cfg.DataDir, name), []byte(content+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) removeFiles() error {
	for _, name := range []string{PIDFile, URLFile, P2PFile} {
		os.Remove(filepath.Join(n.cfg.DataDir, name))
	}
	return nil
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return goruntime.Version()
}
