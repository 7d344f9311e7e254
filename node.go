package mycel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"

	libp2phost "github.com/libp2p/go-libp2p/core/host"

	"github.com/mycelfabric/mycel/kubeapi"
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
	"github.com/mycelfabric/mycel/workloadplane/store"
)

// Files a node keeps in its data dir for scripts and operators.
const (
	PIDFile    = "mycel.pid"
	P2PFile    = "p2p.addrs"
	URLFile    = "api.url"
	StoreFile  = "state.db"
	kubeMinor  = "32"
	kubeGitVer = "v1.32.0"
)

// Node is a running Mycel node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	id      *host.Identity
	creds   *identity.Source
	store   *store.Store
	objs    *objects.Objects
	runtime rt.Runtime
	agent   *agent.Agent
	p2p     libp2phost.Host
	dht     *dht.DHT
	bus     *bus.Bus
	members *membership.Service
	owners  *owner.Table
	// rejected counts the control messages every protocol drops.
	rejected *prometheus.CounterVec
	repl     *replica.Replicator

	machine  host.Machine
	capacity corev1.ResourceList // what the node offers (see measureCapacity)

	records *discovery.Publisher
	api     *http.Server
	url     string

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Start starts a node and returns once its API is listening. On error,
// everything it had started is stopped again.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.Name)}
	n.machine = host.Measure()
	n.capacity = measureCapacity(n.machine, cfg.Capacity)
	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	defer func() {
		if err != nil {
			n.Close()
		}
	}()

	if n.id, err = host.LoadOrCreateIdentity(cfg.DataDir); err != nil {
		return nil, err
	}
	engine, err := n.loadPolicies(ctx)
	if err != nil {
		return nil, err
	}
	apiHost, apiPort, _ := net.SplitHostPort(cfg.APIAddr)
	kept := host.LoadPorts(cfg.DataDir)
	if n.p2p, err = host.New(n.id, kept.Listen(cfg.P2PListen), host.DefaultLimits()); err != nil && kept.P2PTCP+kept.P2PQUIC > 0 {
		n.log.Warn("cannot listen on the libp2p ports of the last start; picking others (peers find this node again through the DHT and the bus)", "err", err)
		n.p2p, err = host.New(n.id, cfg.P2PListen, host.DefaultLimits())
	}
	if err != nil {
		return nil, err
	}
	if n.creds, err = identity.Open(ctx, identity.Config{DataDir: cfg.DataDir, CADir: cfg.CADir, Join: cfg.Join,
		PeerID: n.id.ID.String(), Name: cfg.Name, APIHost: apiHost, Host: n.p2p, Addrs: n.P2PAddrs(), TTL: cfg.SVIDTTL,
		Logger: n.log.With("component", "identity")}); err != nil {
		return nil, err
	}
	if n.store, err = store.Open(filepath.Join(cfg.DataDir, StoreFile), store.Options{Node: n.id.ID.String(),
		// n.repl is set before anything writes to the store.
		OnLocalWrite: func(r store.Record) { n.repl.Enqueue(r) }}); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := n.startDHT(ctx, reg); err != nil {
		return nil, err
	}
	n.records = discovery.NewPublisher(discovery.PublisherConfig{DHT: n.dht, Key: n.id.Key, Facts: n.recordFacts})
	busHost := apiHost
	if ip := net.ParseIP(apiHost); ip == nil || ip.IsUnspecified() {
		// With a wildcard API address the bus stays on loopback: a fabric
		// across machines needs nodes started with a specific --api-addr.
		busHost = "127.0.0.1"
	}
	if err := n.startBus(ctx, busHost, kept); err != nil {
		return nil, err
	}
	if err := n.keepPorts(); err != nil {
		return nil, err
	}
	if err := n.startFabric(reg); err != nil {
		return nil, err
	}
	n.objs = objects.New(n.store, nil)
	if err := n.ensureNamespace(ctx, metav1.NamespaceDefault); err != nil {
		return nil, err
	}
	if err := objects.RegisterPodMetrics(reg, n.objs); err != nil {
		return nil, err
	}
	if n.runtime, err = n.startRuntime(ctx); err != nil {
		return nil, err
	}
	if n.runtime, err = rt.Metered(n.runtime, reg); err != nil {
		return nil, err
	}
	nodeIP := apiHost
	if ip := net.ParseIP(apiHost); ip == nil || ip.IsUnspecified() {
		nodeIP = "127.0.0.1"
	}
	if n.agent, err = agent.New(agent.Config{NodeName: cfg.Name, NodeIP: nodeIP, Client: n.objs, Runtime: n.runtime,
		Record: n.records.Sign, Machine: n.machine, HeartbeatInterval: cfg.HeartbeatInterval, Logger: n.log.With("component", "agent")}); err != nil {
		return nil, err
	}
	ctrl, err := controller.New(controller.Config{Client: n.objs, Owns: n.owners.Owns, Logger: n.log.With("component", "controller")})
	if err != nil {
		return nil, err
	}
	place, err := n.startPlacement(reg, engine)
	if err != nil {
		return nil, err
	}
	lifecycle, err := controller.NewNodeLifecycle(controller.NodeLifecycleConfig{Client: n.objs, Liveness: liveness{n.id.ID.String(), n.members},
		Owns: n.owners.Owns, HeartbeatInterval: cfg.HeartbeatInterval, Logger: n.log.With("component", "node-lifecycle")})
	if err != nil {
		return nil, err
	}
	kick := func() {
		ctrl.Kick()
		place.scheduler.Kick()
		lifecycle.Kick()
	}
	n.members.Subscribe(func(membership.Event) { kick() })

	srv, err := kubeapi.NewServer(kubeapi.Config{
		Objects:  n.objs,
		Bundle:   n.creds.Bundle(),
		Admitter: admitter{engine},
		Logs:     n.agent,
		Version: version.Info{Major: "1", Minor: kubeMinor, GitVersion: kubeGitVer + "+mycel-" + Version, Platform: "linux/amd64",
			GoVersion: goVersion()},
		Logger:   n.log.With("component", "api"),
		Registry: reg,
		Extra:    map[string]http.Handler{StatusPath: http.HandlerFunc(n.serveStatus)},
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (is another node using this address? pick one with --api-addr)", cfg.APIAddr, err)
	}
	urlHost := apiHost
	if ip := net.ParseIP(apiHost); ip != nil && ip.IsUnspecified() {
		urlHost = "127.0.0.1"
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if apiPort != "0" {
		port = apiPort
	}
	n.url = "https://" + net.JoinHostPort(urlHost, port)
	n.api = &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return n.creds.TLSCertificate(), nil },
			// The API verifies client certificates itself, as SVIDs, so it can
			// answer 401 with a Status instead of failing the handshake.
			ClientAuth: tls.RequestClientCert,
		},
	}
	n.goRun(func() {
		if err := n.api.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("API server stopped", "err", err)
		}
	})
	if _, err := n.records.Sign(ctx); err != nil {
		return nil, err
	}
	n.runFabric(runCtx, kick)
	n.goRun(func() {
		// Not before settling: a node back from the dead must first learn
		// which of its pods were deleted while it was away, or its status
		// writes would bring them back.
		select {
		case <-runCtx.Done():
			return
		case <-n.owners.Done():
		}
		n.agent.Run(runCtx)
	})
	n.goRun(func() { ctrl.Run(runCtx) })
	n.runPlacement(runCtx, place)
	n.goRun(func() { n.agent.RunHeartbeat(runCtx) })
	n.goRun(func() { lifecycle.Run(runCtx) })
	n.goRun(func() { n.creds.Rotate(runCtx) })
	n.goRun(func() {
		n.every(runCtx, time.Hour, nil, "collect tombstones", func(context.Context) error {
			_, err := n.store.CollectTombstones(time.Now().Add(-24 * time.Hour))
			return err
		})
	})
	n.goRun(func() { n.every(runCtx, discovery.RecordRefresh, nil, "publish node record", n.records.Publish) })

	if err := os.WriteFile(filepath.Join(cfg.DataDir, URLFile), []byte(n.url+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.DataDir, PIDFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.DataDir, P2PFile), []byte(strings.Join(n.P2PAddrs(), "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	n.log.Info("node started", "api", n.url, "peer", n.id.ID.String(), "p2p", n.P2PAddrs(), "trustDomain", n.creds.Bundle().TrustDomain().Name(), "policies", engine.Files())
	return n, nil
}

// goRun runs fn in a goroutine the node waits for on Close.
func (n *Node) goRun(fn func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		fn()
	}()
}

// URL is the API's base URL.
func (n *Node) URL() string { return n.url }

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// PeerID is the node's libp2p peer ID.
func (n *Node) PeerID() string { return n.id.ID.String() }

// Close stops the node: intake first (API), then the loops, then the store.
// Containers keep running; a restarted node re-adopts them. It is
// idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.api != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := n.api.Shutdown(ctx); err != nil {
				n.api.Close()
			}
			cancel()
		}
		n.cancel()
		n.wg.Wait()
		if n.creds != nil {
			n.creds.Close()
		}
		if n.bus != nil {
			n.bus.Close()
		}
		if n.dht != nil {
			errs = append(errs, n.dht.Close())
		}
		if n.p2p != nil {
			errs = append(errs, n.p2p.Close())
		}
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
		os.Remove(filepath.Join(n.cfg.DataDir, PIDFile))
		os.Remove(filepath.Join(n.cfg.DataDir, URLFile))
		os.Remove(filepath.Join(n.cfg.DataDir, P2PFile))
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// RemoveContainers removes every container this node created (`mycel up`
// does this on exit so a demo leaves nothing behind). Call it after Close,
// or the agent restarts what it removes.
func (n *Node) RemoveContainers(ctx context.Context) error {
	ctrs, err := n.runtime.List(ctx, map[string]string{rt.LabelNode: n.cfg.Name})
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range ctrs {
		errs = append(errs, n.runtime.Remove(ctx, c.ID))
	}
	return errors.Join(errs...)
}

func (n *Node) loadPolicies(ctx context.Context) (*policy.Engine, error) {
	if n.cfg.PolicyDir != "" {
		return policy.LoadDir(ctx, n.cfg.PolicyDir)
	}
	return policy.Load(ctx, policies.Default, "policies (embedded)")
}

func (n *Node) startRuntime(ctx context.Context) (rt.Runtime, error) {
	if n.cfg.Runtime != nil {
		return n.cfg.Runtime, nil
	}
	if n.cfg.RuntimeName == RuntimeSim {
		c := n.capacity
		n.log.Warn("runtime sim: containers are simulated, nothing runs (scale simulations only)")
		return sim.New(c.Cpu().MilliValue(), c.Memory().Value()), nil
	}
	sock := n.cfg.PodmanSocket
	if sock == "" {
		sock = podman.DefaultSocket
		started, err := podman.EnsureService(ctx, sock)
		if errors.Is(err, podman.ErrNotInstalled) {
			return nil, err
		}
		if err != nil {
			n.log.Warn("Podman is not available; pods will wait until it is", "err", err)
		} else if started {
			n.log.Info("started `podman system service`", "socket", sock)
		}
	} else if !podman.Listening(sock) {
		n.log.Warn("nothing listens on the Podman socket yet; pods will wait until it does", "socket", sock)
	}
	return podman.New(sock), nil
}

func (n *Node) ensureNamespace(ctx context.Context, name string) error {
	err := n.objs.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// every runs fn now and then every interval, and whenever kick fires, until
// ctx is done, logging its errors (the node's periodic duties: heartbeat,
// record, tombstones, unreachable nodes).
func (n *Node) every(ctx context.Context, interval time.Duration, kick <-chan struct{}, what string, fn func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn(what, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
	}
}

// admitter adapts the policy engine to the API's Admitter.
type admitter struct{ e *policy.Engine }

func (a admitter) Admit(ctx context.Context, req kubeapi.AdmissionRequest) error {
	return a.e.Admit(ctx, req)
}

// defaultMaxPods is how many pods a node takes, as a kubelet's default.
const defaultMaxPods = 110

// measureCapacity is what the machine offers: its CPUs, memory and 110
// pods, or what overrides say instead.
func measureCapacity(m host.Machine, overrides corev1.ResourceList) corev1.ResourceList {
	c := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(m.CPUs), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(m.MemoryBytes, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(defaultMaxPods, resource.DecimalSI),
	}
	maps.Copy(c, overrides)
	return c
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return goruntime.Version()
}
