// Package runtime defines how a node runs containers: the Runtime interface
// that the node agent drives, with the Podman implementation in podman/ and
// a capacity-only simulation in sim/ (for scale simulations only).
package runtime

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	mycelv1alpha1 "github.com/mycelfabric/mycel/api/mycel/v1alpha1"
)

var (
	// ErrImageNotFound means the image is not present locally (and, for a
	// pull, could not be pulled).
	ErrImageNotFound = errors.New("runtime: image not found")
	// ErrUnavailable means the container engine cannot be reached.
	ErrUnavailable = errors.New("runtime: container engine unavailable")
	// ErrNotFound means no such container.
	ErrNotFound = errors.New("runtime: no such container")
	// ErrNotRunning means the container exists but is not running.
	ErrNotRunning = errors.New("runtime: container is not running")
)

// Labels every container Mycel creates carries, so a restarted node can
// re-adopt its containers and a human can recognise them in `podman ps`. A
// node adopts (and removes as orphans) only the containers of its own trust
// domain and peer: two fabrics on one machine, even with nodes of the same
// name, leave each other's containers alone.
const (
	LabelNamespace   = "mycel.io/namespace"
	LabelPod         = "mycel.io/pod"
	LabelPodUID      = "mycel.io/pod-uid"
	LabelNode        = "mycel.io/node"
	LabelTrustDomain = "mycel.io/trust-domain"
	LabelPeerID      = mycelv1alpha1.LabelPeerID
	LabelContainer   = "mycel.io/container"
	LabelAttempt     = "mycel.io/attempt"
)

// Port publishes a container port on the host.
type Port struct {
	ContainerPort int32
	HostPort      int32
	HostIP        string
	Protocol      string // "tcp" or "udp"
}

// Mount binds a host path (a directory or a file) into a container.
type Mount struct {
	Source      string
	Destination string
	ReadOnly    bool
}

// Spec is a container to create.
type Spec struct {
	Name       string
	Image      string
	Command    []string // replaces the image's entrypoint when set
	Args       []string // replaces the image's command when set
	Env        map[string]string
	WorkingDir string
	Ports      []Port
	Mounts     []Mount
	// Sandbox is the ID of the sandbox whose network namespace (and so IP,
	// localhost and ports) the container joins; Ports are then ignored
	// (the sandbox publishes them). Empty gives the container its own.
	Sandbox string
	// MilliCPU and MemoryBytes are limits; zero means none.
	MilliCPU    int64
	MemoryBytes int64
	Labels      map[string]string
	// Stdin keeps the container's stdin open for attach; TTY gives it a
	// terminal (a pod container's stdin and tty).
	Stdin, TTY bool
}

// State is a container's lifecycle state.
type State string

// Container states.
const (
	StateCreated State = "created"
	StateRunning State = "running"
	StateExited  State = "exited"
	StateUnknown State = "unknown"
)

// Container is what the runtime reports about one container.
type Container struct {
	ID         string
	Name       string
	Image      string
	ImageID    string
	Labels     map[string]string
	State      State
	ExitCode   int32
	OOMKilled  bool
	Error      string
	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	IP         string
}

// LogOptions selects which logs to read.
type LogOptions struct {
	Follow     bool
	Timestamps bool
	TailLines  *int64
	Since      time.Time
}

// Info describes the runtime.
type Info struct {
	Name    string // e.g. "podman"
	Version string // e.g. "4.3.1"
}

// Runtime runs containers. Implementations are safe for concurrent use;
// every method fails with an error wrapping ErrUnavailable when the engine
// cannot be reached.
type Runtime interface {
	// Info returns the engine's name and version.
	Info(ctx context.Context) (Info, error)
	// EnsureImage makes image present locally. If pull is false it only
	// checks. It returns an error wrapping ErrImageNotFound when the image is
	// absent and cannot be pulled.
	EnsureImage(ctx context.Context, image string, pull bool) error
	// Create creates (does not start) a container and returns its ID.
	Create(ctx context.Context, spec Spec) (string, error)
	// Start starts a created or exited container.
	Start(ctx context.Context, id string) error
	// Stop stops a container, killing it after timeout. Stopping a stopped
	// container succeeds.
	Stop(ctx context.Context, id string, timeout time.Duration) error
	// Remove removes a container, stopping it first if needed. Removing a
	// missing container succeeds.
	Remove(ctx context.Context, id string) error
	// List returns the containers carrying all of labels, in any state
	// (not the infrastructure of sandboxes).
	List(ctx context.Context, labels map[string]string) ([]Container, error)
	// Logs writes a container's logs to w.
	Logs(ctx context.Context, id string, opts LogOptions, w io.Writer) error
}

// Execer is implemented by runtimes that can run a command inside a running
// container (exec probes, lifecycle hooks, kubectl exec).
type Execer interface {
	// Exec runs opts.Command in running container id and returns its exit
	// code once it has ended. It fails with an error wrapping ErrNotFound
	// for a container that does not exist, ErrNotRunning for one that is
	// not running. When ctx
	// ends first, Exec returns ctx's error; the command may still run.
	Exec(ctx context.Context, id string, opts ExecOptions) (int, error)
}

// ExecOptions say what to run and which streams to attach (nil ones are
// not).
type ExecOptions struct {
	Command        []string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// TTY gives the command a terminal; Stderr is then part of Stdout.
	TTY bool
	// Resize carries the terminal's size changes while the command runs.
	Resize <-chan TermSize
}

// TermSize is a terminal's size in characters.
type TermSize struct{ Width, Height uint16 }

// Attacher is implemented by runtimes that can attach to a running
// container's main process (kubectl attach).
type Attacher interface {
	// Attach copies the streams of opts (Command is ignored) to and from
	// running container id until the process or ctx ends. Errors are
	// Exec's.
	Attach(ctx context.Context, id string, opts ExecOptions) error
}

// PortDialer is implemented by runtimes whose sandboxes can be reached on
// their own loopback (kubectl port-forward).
type PortDialer interface {
	// DialPort connects to TCP port on localhost inside running sandbox
	// id's network namespace.
	DialPort(ctx context.Context, sandboxID string, port int32) (net.Conn, error)
}

// StatsReader is implemented by runtimes that can report what their
// containers use (kubectl top, HorizontalPodAutoscalers).
type StatsReader interface {
	// Stats returns the usage of every running container, by container
	// ID.
	Stats(ctx context.Context) (map[string]Stats, error)
}

// Stats is one container's usage at one moment.
type Stats struct {
	// CPU is the CPU time the container has used since it started.
	CPU time.Duration
	// Memory is the memory it uses now, in bytes (the engine's figure:
	// usage without the page cache).
	Memory uint64
}

// Sandboxes is implemented by runtimes that can group a pod's containers in
// one network namespace, as Kubernetes pods are: one IP, ports and
// localhost shared by every container of the pod.
type Sandboxes interface {
	// CreateSandbox creates and starts a sandbox and returns it with its
	// IP.
	CreateSandbox(ctx context.Context, spec SandboxSpec) (Sandbox, error)
	// ListSandboxes returns the sandboxes carrying all of labels.
	ListSandboxes(ctx context.Context, labels map[string]string) ([]Sandbox, error)
	// RemoveSandbox removes a sandbox and every container in it.
	// Removing a missing sandbox succeeds.
	RemoveSandbox(ctx context.Context, id string) error
}

// SandboxSpec is a sandbox to create.
type SandboxSpec struct {
	Name     string
	Hostname string
	Labels   map[string]string
	// Ports are the host ports of every container of the pod.
	Ports []Port
}

// Sandbox is what the runtime reports about one sandbox.
type Sandbox struct {
	ID      string
	Name    string
	Labels  map[string]string
	Running bool
	IP      string
}

// As finds optional interface T (Execer, Attacher, PortDialer, Sandboxes,
// StatsReader) on r or on a runtime r wraps (an Unwrap method, as Metered
// has).
func As[T any](r Runtime) (T, bool) {
	for r != nil {
		if t, ok := r.(T); ok {
			return t, true
		}
		u, ok := r.(interface{ Unwrap() Runtime })
		if !ok {
			break
		}
		r = u.Unwrap()
	}
	var zero T
	return zero, false
}
