// Package localfabric runs a fabric of Mycel nodes on one machine, for
// `mycel up`: a trust domain created on first use, and one `mycel node`
// process per node, each with its own data dir, PID and loopback address,
// so that killing one (kill -9 of its mycel.pid) leaves the others
// serving, as on machines of their own. It supervises the processes, and
// on Close stops them all and removes the containers they started.
//
// It is tooling, not a plane: it starts the mycel binary and talks to the
// nodes as a user would (a kubeconfig, the API, Podman).
package localfabric

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mycelfabric/mycel/machineplane/host"
	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/securityplane/identity"
	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
	"github.com/mycelfabric/mycel/workloadplane/runtime/podman"
)

// DemoImage is the image `make image` builds and `mycel up --demo` runs.
const DemoImage = "localhost/mycel-demo:0.1"

// DefaultTrustDomain is the trust domain `mycel up` creates.
const DefaultTrustDomain = "mycel.local"

// Files of a node's data dir that localfabric reads (written by the node).
const (
	urlFile = "api.url"
	p2pFile = "p2p.addrs"
	logFile = "node.log"
)

// Config configures a local fabric.
type Config struct {
	// Dir holds the CA (Dir/ca), the nodes (Dir/nodes/NAME, each with its
	// node.log) and the kubeconfig (Dir/kubeconfig).
	Dir string
	// APIAddr is the first node's API address; default 127.0.0.1:6443.
	// Node i (from 2) listens on 127.0.0.i, at the same port.
	APIAddr string
	// Nodes is how many nodes to run; zero means 1.
	Nodes int
	// Demo deploys the demo image.
	Demo bool
	// Binary is the mycel executable; default this process's.
	Binary string
	// NodeArgs are further `mycel node` flags (--runtime, --podman-socket).
	NodeArgs []string
	// Log receives every node's output, each line prefixed with its name;
	// nil discards it (it is in each node's node.log either way).
	Log io.Writer
	// Logger reports what the supervisor does; nil discards.
	Logger *slog.Logger
	// Ready bounds how long each node may take to start and the fabric to
	// list every node Ready; zero means 90s.
	Ready time.Duration
}

// Fabric is a running local fabric.
type Fabric struct {
	// Kubeconfig is the path of the kubeconfig for user "admin", with one
	// context per node.
	Kubeconfig string
	Nodes      []*Node

	cfg     Config
	td      string
	mu      sync.Mutex // serializes writes to cfg.Log
	closing atomic.Bool
}

// Node is one node process.
type Node struct {
	Name    string
	DataDir string
	URL     string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// PID is the node's process ID.
func (n *Node) PID() int { return n.cmd.Process.Pid }

// Exited is closed once the node's process has ended.
func (n *Node) Exited() <-chan struct{} { return n.exited }

// Up starts a local fabric and returns once kubectl can use it: every
// node's API lists every node Ready.
func Up(ctx context.Context, cfg Config) (*Fabric, error) {
	if cfg.Dir == "" {
		return nil, errors.New("up: a directory is required")
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = "127.0.0.1:6443"
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 1
	}
	if cfg.Ready == 0 {
		cfg.Ready = 90 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Binary == "" {
		bin, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("up: find the mycel binary: %w", err)
		}
		cfg.Binary = bin
	}
	_, port, err := net.SplitHostPort(cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("up: --api-addr %q: %w", cfg.APIAddr, err)
	}
	if cfg.Nodes < 1 || cfg.Nodes > 250 {
		return nil, fmt.Errorf("up: --nodes %d: want 1 to 250 (one loopback address each)", cfg.Nodes)
	}
	caDir := filepath.Join(cfg.Dir, "ca")
	a, err := ca.Load(caDir)
	if errors.Is(err, ca.ErrNoCA) {
		a, err = ca.Init(caDir, DefaultTrustDomain)
	}
	if err != nil {
		return nil, err
	}
	f := &Fabric{Kubeconfig: filepath.Join(cfg.Dir, "kubeconfig"), cfg: cfg, td: a.TrustDomain().Name()}
	fail := func(err error) (*Fabric, error) {
		f.Close(context.Background())
		return nil, err
	}
	var contexts []ca.KubeconfigContext
	for i := 1; i <= cfg.Nodes; i++ {
		name := fmt.Sprintf("node-%d", i)
		dataDir := filepath.Join(cfg.Dir, "nodes", name)
		addr := cfg.APIAddr
		args := []string{"node", "--name", name, "--data-dir", dataDir}
		if i == 1 {
			args = append(args, "--ca-dir", caDir)
		} else {
			addr = net.JoinHostPort(fmt.Sprintf("127.0.0.%d", i), port)
			if !identity.HasCredentials(dataDir) {
				tok, err := a.CreateToken(caDir, 10*time.Minute, 1)
				if err != nil {
					return fail(err)
				}
				args = append(args, "--join", tok.String())
			}
			boot, err := os.ReadFile(filepath.Join(f.Nodes[0].DataDir, p2pFile))
			if err != nil {
				return fail(err)
			}
			args = append(args, "--bootstrap", strings.Join(strings.Fields(string(boot)), ","))
		}
		args = append(append(args, "--api-addr", addr), cfg.NodeArgs...)
		n, err := f.start(ctx, name, dataDir, args)
		if err != nil {
			return fail(fmt.Errorf("up: start %s: %w", name, err))
		}
		f.Nodes = append(f.Nodes, n)
		contexts = append(contexts, ca.KubeconfigContext{Name: name, Server: n.URL})
	}
	kc, err := a.Kubeconfig("admin", []string{ca.AdminGroup}, 365*24*time.Hour, contexts...)
	if err != nil {
		return fail(err)
	}
	if err := ca.WriteFile(f.Kubeconfig, kc, 0o600); err != nil {
		return fail(err)
	}
	if err := f.waitReady(ctx, kc); err != nil {
		return fail(err)
	}
	if cfg.Demo {
		if err := f.deployDemo(ctx, kc); err != nil {
			return fail(err)
		}
	}
	return f, nil
}

// start runs one `mycel node` and waits for its API (the node writes
// api.url once it listens).
func (f *Fabric) start(ctx context.Context, name, dataDir string, args []string) (*Node, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	os.Remove(filepath.Join(dataDir, urlFile)) // left by a node that was killed
	logf, err := os.OpenFile(filepath.Join(dataDir, logFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	n := &Node{Name: name, DataDir: dataDir, exited: make(chan struct{})}
	out, w := io.Pipe()
	n.cmd = exec.Command(f.cfg.Binary, args...)
	n.cmd.Stdout, n.cmd.Stderr = w, w
	// Not in up's process group: Ctrl-C reaches up, which stops the nodes
	// in order.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	f.cfg.Logger.Info("started node", "node", name, "pid", n.cmd.Process.Pid, "log", filepath.Join(dataDir, logFile))
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		f.copyLog(name, out, logf)
	}()
	go func() {
		n.waitErr = n.cmd.Wait()
		w.Close()
		<-copied
		logf.Close()
		close(n.exited)
		if f.closing.Load() {
			return
		}
		f.cfg.Logger.Warn("node exited; the others keep serving (`mycel up` again restarts it, keeping its identity)", "node", name, "err", n.waitErr)
	}()
	deadline := time.NewTimer(f.cfg.Ready)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond) // the node announces readiness only by writing the file
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(filepath.Join(dataDir, urlFile)); err == nil && len(b) > 0 {
			n.URL = strings.TrimSpace(string(b))
			return n, nil
		}
		select {
		case <-ctx.Done():
			f.stop(n)
			return nil, ctx.Err()
		case <-n.exited:
			return nil, fmt.Errorf("mycel node exited (%v); see %s", n.waitErr, filepath.Join(dataDir, logFile))
		case <-deadline.C:
			f.stop(n)
			return nil, fmt.Errorf("no API after %s; see %s", f.cfg.Ready, filepath.Join(dataDir, logFile))
		case <-tick.C:
		}
	}
}

// copyLog writes a node's output to its log file and, prefixed, to
// Config.Log.
func (f *Fabric) copyLog(name string, r io.Reader, file io.Writer) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		line := s.Text()
		fmt.Fprintln(file, line)
		if f.cfg.Log != nil {
			f.mu.Lock()
			fmt.Fprintf(f.cfg.Log, "%s: %s\n", name, line)
			f.mu.Unlock()
		}
	}
	io.Copy(io.Discard, r)
}

// waitReady waits until every node's API lists every node Ready.
func (f *Fabric) waitReady(ctx context.Context, kubeconfig []byte) error {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Ready)
	defer cancel()
	for _, n := range f.Nodes {
		cs, err := client(kubeconfig, n.Name)
		if err != nil {
			return err
		}
		for _, m := range f.Nodes {
			last := "no answer yet"
			for {
				node, err := cs.CoreV1().Nodes().Get(ctx, m.Name, metav1.GetOptions{})
				if err != nil {
					last = err.Error()
				} else if c := readyCondition(node); c != nil {
					if c.Status == corev1.ConditionTrue {
						break
					}
					last = c.Message
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("up: %s does not list %s Ready: %s", n.Name, m.Name, last)
				case <-n.exited:
					return fmt.Errorf("up: %s exited; see %s", n.Name, filepath.Join(n.DataDir, logFile))
				case <-time.After(200 * time.Millisecond): // no watch before the node is known
				}
			}
		}
	}
	return nil
}

func readyCondition(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// client is a clientset for a kubeconfig context.
func client(kubeconfig []byte, context string) (*kubernetes.Clientset, error) {
	cfg, err := ca.ClientConfig(kubeconfig, context)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// deployDemo creates the demo Deployment, as kubectl would.
func (f *Fabric) deployDemo(ctx context.Context, kubeconfig []byte) error {
	cs, err := client(kubeconfig, f.Nodes[0].Name)
	if err != nil {
		return err
	}
	labels := map[string]string{"app": "demo"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "default", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: DemoImage, ImagePullPolicy: corev1.PullNever,
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("up: deploy demo: %w", err)
	}
	return nil
}

// Close stops every node (SIGTERM, then SIGKILL after 30 s), then removes
// the containers they started: those of this fabric's trust domain and
// its nodes' peers, nothing of another fabric's.
func (f *Fabric) Close(ctx context.Context) error {
	f.closing.Store(true)
	var wg sync.WaitGroup
	for _, n := range f.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.stop(n)
		}()
	}
	wg.Wait()
	return f.removeContainers(ctx)
}

func (f *Fabric) stop(n *Node) {
	select {
	case <-n.exited:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
}

func (f *Fabric) removeContainers(ctx context.Context) error {
	socket := podman.DefaultSocket
	for i, a := range f.cfg.NodeArgs {
		if a == "--podman-socket" && i+1 < len(f.cfg.NodeArgs) {
			socket = f.cfg.NodeArgs[i+1]
		}
	}
	r := podman.New(socket)
	var errs []error
	for _, n := range f.Nodes {
		id, err := host.LoadOrCreateIdentity(n.DataDir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		mine := map[string]string{rt.LabelTrustDomain: f.td, rt.LabelPeerID: id.ID.String()}
		// Pod sandboxes first: removing one removes its containers.
		sbs, err := r.ListSandboxes(ctx, mine)
		if errors.Is(err, rt.ErrUnavailable) {
			continue // no Podman, no containers (the sim runtime)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("pod sandboxes of %s: %w", n.Name, err))
		}
		for _, sb := range sbs {
			if err := r.RemoveSandbox(ctx, sb.ID); err != nil {
				errs = append(errs, fmt.Errorf("remove sandbox %s of %s: %w", sb.Name, n.Name, err))
			}
		}
		ctrs, err := r.List(ctx, mine)
		if err != nil {
			if errors.Is(err, rt.ErrUnavailable) {
				continue // no Podman, no containers (the sim runtime)
			}
			errs = append(errs, fmt.Errorf("containers of %s: %w", n.Name, err))
			continue
		}
		for _, c := range ctrs {
			if err := r.Remove(ctx, c.ID); err != nil {
				errs = append(errs, fmt.Errorf("remove %s of %s: %w", c.Name, n.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}
