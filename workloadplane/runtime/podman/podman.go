// Package podman runs containers under Podman through the podman/v5 REST
// bindings over the Podman socket. It is the production Runtime.
//
// Build with the tags the bindings need:
// remote exclude_graphdriver_btrfs btrfs_noversion exclude_graphdriver_devicemapper containers_image_openpgp
package podman

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containers/podman/v5/libpod/define"
	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/images"
	"github.com/containers/podman/v5/pkg/bindings/system"
	"github.com/containers/podman/v5/pkg/errorhandling"
	"github.com/containers/podman/v5/pkg/specgen"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	nettypes "go.podman.io/common/libnetwork/types"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// DefaultSocket is the system Podman socket.
const DefaultSocket = "/run/podman/podman.sock"

// Podman is a Runtime over a Podman socket. It connects lazily, so a node
// starts (and keeps serving its API) while Podman is down, and recovers when
// it returns.
type Podman struct {
	uri string

	mu   sync.Mutex
	conn context.Context // carries the bindings client; nil until connected

	cacheMu sync.Mutex
	cache   map[string]inspected // by container ID

	versionMu sync.Mutex
	version   string    // the service's, from /version
	versionAt time.Time // when it was read
}

// versionFor is how long Info reuses the service's version: Podman's
// /version runs its OCI runtime and conmon to report theirs (about a
// quarter of a second here), and a node asks at every status check.
const versionFor = 10 * time.Minute

// inspected is what Inspect said about a container in a given state.
type inspected struct {
	state    string
	ip       string
	oom      bool
	errMsg   string
	started  time.Time
	finished time.Time
	imageID  string
}

var _ rt.Runtime = (*Podman)(nil)

// New returns a runtime for the Podman socket at path (DefaultSocket if empty).
func New(path string) *Podman {
	if path == "" {
		path = DefaultSocket
	}
	return &Podman{uri: "unix://" + path, cache: map[string]inspected{}}
}

// ctx returns a context carrying the bindings connection and the caller's
// deadline and cancellation.
func (p *Podman) ctx(ctx context.Context) (context.Context, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		conn, err := bindings.NewConnection(context.Background(), p.uri)
		if err != nil {
			return nil, fmt.Errorf("%w: %v (is `podman system service` running?)", rt.ErrUnavailable, err)
		}
		p.conn = conn
	}
	return valuesFrom{Context: ctx, values: p.conn}, nil
}

// valuesFrom is ctx with the values of another context.
type valuesFrom struct {
	context.Context
	values context.Context
}

func (v valuesFrom) Value(key any) any {
	if x := v.values.Value(key); x != nil {
		return x
	}
	return v.Context.Value(key)
}

// wrap classifies a bindings error.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("podman %s: %w", op, err)
	}
	var em *errorhandling.ErrorModel
	if errors.As(err, &em) {
		switch {
		case em.ResponseCode == http.StatusNotFound && strings.Contains(em.Because, "image not known"):
			return fmt.Errorf("podman %s: %w: %s", op, rt.ErrImageNotFound, em.Message)
		case em.ResponseCode == http.StatusNotFound:
			return fmt.Errorf("podman %s: %w: %s", op, rt.ErrNotFound, em.Message)
		case strings.Contains(em.Message, "container state improper"):
			return fmt.Errorf("podman %s: %w: %s", op, rt.ErrNotRunning, em.Message)
		}
		return fmt.Errorf("podman %s: %s", op, em.Message)
	}
	var ce bindings.ConnectError
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ce) || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &ue) || errors.As(err, &ne) {
		return fmt.Errorf("podman %s: %w: %v", op, rt.ErrUnavailable, err)
	}
	return fmt.Errorf("podman %s: %w", op, err)
}

// Info implements rt.Runtime: it checks that the service answers
// (/_ping, every call) and says its version (/version, read again every
// versionFor).
func (p *Podman) Info(ctx context.Context) (rt.Info, error) {
	c, err := p.ctx(ctx)
	if err != nil {
		return rt.Info{}, err
	}
	conn, err := bindings.GetClient(c)
	if err != nil {
		return rt.Info{}, wrap("ping", err)
	}
	resp, err := conn.DoRequest(c, nil, http.MethodGet, "/_ping", nil, nil)
	if err != nil {
		return rt.Info{}, wrap("ping", err)
	}
	resp.Body.Close()
	if !resp.IsSuccess() {
		return rt.Info{}, fmt.Errorf("podman ping: %w: %s", rt.ErrUnavailable, resp.Status)
	}
	p.versionMu.Lock()
	defer p.versionMu.Unlock()
	if p.versionAt.IsZero() || time.Since(p.versionAt) > versionFor {
		v, err := system.Version(c, nil)
		if err != nil {
			return rt.Info{}, wrap("version", err)
		}
		p.version, p.versionAt = "", time.Now()
		if v.Server != nil {
			p.version = v.Server.Version
		}
	}
	return rt.Info{Name: "podman", Version: p.version}, nil
}

// EnsureImage implements rt.Runtime. With pull, a failed pull of an image
// that is present locally is not an error: nodes without a registry keep
// working with the images they have.
func (p *Podman) EnsureImage(ctx context.Context, image string, pull bool) error {
	c, err := p.ctx(ctx)
	if err != nil {
		return err
	}
	ok, err := images.Exists(c, image, nil)
	if err != nil {
		return wrap("image exists", err)
	}
	if ok {
		return nil
	}
	if !pull {
		return fmt.Errorf("%w: %s", rt.ErrImageNotFound, image)
	}
	if _, err := images.Pull(c, image, new(images.PullOptions).WithPolicy("missing").WithQuiet(true)); err != nil {
		err = wrap("pull", err)
		if errors.Is(err, rt.ErrUnavailable) {
			return err
		}
		return fmt.Errorf("%w: %s: %v", rt.ErrImageNotFound, image, err)
	}
	return nil
}

// Create implements rt.Runtime.
func (p *Podman) Create(ctx context.Context, spec rt.Spec) (string, error) {
	c, err := p.ctx(ctx)
	if err != nil {
		return "", err
	}
	s := specgen.NewSpecGenerator(spec.Image, false)
	s.Name = spec.Name
	s.Labels = spec.Labels
	// Kubernetes command replaces the entrypoint, args the image command.
	s.Entrypoint = spec.Command
	s.Command = spec.Args
	s.Env = spec.Env
	s.WorkDir = spec.WorkingDir
	s.RestartPolicy = define.RestartPolicyNo // the agent restarts, with backoff
	s.Pod = spec.Sandbox
	if spec.Stdin || spec.TTY {
		s.Stdin, s.Terminal = &spec.Stdin, &spec.TTY
	}
	for _, m := range spec.Mounts {
		opts := []string{"rbind", "rw"}
		if m.ReadOnly {
			opts[1] = "ro"
		}
		s.Mounts = append(s.Mounts, specs.Mount{Type: "bind", Source: m.Source, Destination: m.Destination, Options: opts})
	}
	for _, port := range spec.Ports {
		if spec.Sandbox != "" {
			break // the sandbox publishes the pod's ports
		}
		s.PortMappings = append(s.PortMappings, nettypes.PortMapping{
			HostIP: port.HostIP, HostPort: uint16(port.HostPort), ContainerPort: uint16(port.ContainerPort), Protocol: port.Protocol,
		})
	}
	if spec.MilliCPU > 0 || spec.MemoryBytes > 0 {
		res := &specs.LinuxResources{}
		if spec.MilliCPU > 0 {
			period := uint64(100000)
			quota := spec.MilliCPU * int64(period) / 1000
			res.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
		}
		if spec.MemoryBytes > 0 {
			mem := spec.MemoryBytes
			res.Memory = &specs.LinuxMemory{Limit: &mem}
		}
		s.ResourceLimits = res
	}
	resp, err := containers.CreateWithSpec(c, s, nil)
	if err != nil {
		return "", wrap("create "+spec.Name, err)
	}
	return resp.ID, nil
}

// Start implements rt.Runtime.
func (p *Podman) Start(ctx context.Context, id string) error {
	c, err := p.ctx(ctx)
	if err != nil {
		return err
	}
	return wrap("start", containers.Start(c, id, nil))
}

// Stop implements rt.Runtime.
func (p *Podman) Stop(ctx context.Context, id string, timeout time.Duration) error {
	c, err := p.ctx(ctx)
	if err != nil {
		return err
	}
	secs := uint(timeout / time.Second)
	return wrap("stop", containers.Stop(c, id, new(containers.StopOptions).WithTimeout(secs).WithIgnore(true)))
}

// Remove implements rt.Runtime.
func (p *Podman) Remove(ctx context.Context, id string) error {
	c, err := p.ctx(ctx)
	if err != nil {
		return err
	}
	_, err = containers.Remove(c, id, new(containers.RemoveOptions).WithForce(true).WithVolumes(true).WithIgnore(true).WithTimeout(0))
	p.cacheMu.Lock()
	delete(p.cache, id)
	p.cacheMu.Unlock()
	if err = wrap("remove", err); errors.Is(err, rt.ErrNotFound) {
		return nil
	}
	return err
}

// List implements rt.Runtime. Details only Inspect has (IP, OOM, exact
// times) are cached per container and state.
func (p *Podman) List(ctx context.Context, labels map[string]string) ([]rt.Container, error) {
	c, err := p.ctx(ctx)
	if err != nil {
		return nil, err
	}
	list, err := containers.List(c, new(containers.ListOptions).WithAll(true).WithFilters(labelFilters(labels)))
	if err != nil {
		return nil, wrap("list", err)
	}
	out := make([]rt.Container, 0, len(list))
	seen := map[string]bool{}
	for _, lc := range list {
		if lc.IsInfra {
			continue // a sandbox's, which carries its pod's labels
		}
		seen[lc.ID] = true
		ctr := rt.Container{
			ID: lc.ID, Image: lc.Image, Labels: lc.Labels, State: state(lc.State), ExitCode: lc.ExitCode,
			CreatedAt: lc.Created,
		}
		if len(lc.Names) > 0 {
			ctr.Name = lc.Names[0]
		}
		if lc.StartedAt > 0 {
			ctr.StartedAt = time.Unix(lc.StartedAt, 0)
		}
		if lc.ExitedAt > 0 && ctr.State == rt.StateExited {
			ctr.FinishedAt = time.Unix(lc.ExitedAt, 0)
		}
		if ctr.State == rt.StateRunning || ctr.State == rt.StateExited {
			in, err := p.inspect(c, lc.ID, lc.State)
			if err == nil {
				ctr.IP, ctr.OOMKilled, ctr.Error, ctr.ImageID = in.ip, in.oom, in.errMsg, in.imageID
				if !in.started.IsZero() {
					ctr.StartedAt = in.started
				}
				if !in.finished.IsZero() && ctr.State == rt.StateExited {
					ctr.FinishedAt = in.finished
				}
			}
		}
		out = append(out, ctr)
	}
	p.cacheMu.Lock()
	for id := range p.cache {
		if !seen[id] && labels[rt.LabelNode] != "" {
			delete(p.cache, id)
		}
	}
	p.cacheMu.Unlock()
	return out, nil
}

// labelFilters selects what carries every one of labels.
func labelFilters(labels map[string]string) map[string][]string {
	var filters []string
	for k, v := range labels {
		filters = append(filters, k+"="+v)
	}
	return map[string][]string{"label": filters}
}

func (p *Podman) inspect(c context.Context, id, st string) (inspected, error) {
	p.cacheMu.Lock()
	in, ok := p.cache[id]
	p.cacheMu.Unlock()
	if ok && in.state == st {
		return in, nil
	}
	d, err := containers.Inspect(c, id, nil)
	if err != nil {
		return inspected{}, wrap("inspect", err)
	}
	in = inspected{state: st, imageID: d.Image}
	if d.State != nil {
		in.oom, in.errMsg, in.started, in.finished = d.State.OOMKilled, d.State.Error, d.State.StartedAt, d.State.FinishedAt
	}
	if ns := d.NetworkSettings; ns != nil {
		in.ip = ns.IPAddress
		for _, n := range ns.Networks {
			if in.ip == "" && n != nil {
				in.ip = n.IPAddress
			}
		}
	}
	p.cacheMu.Lock()
	p.cache[id] = in
	p.cacheMu.Unlock()
	return in, nil
}

func state(s string) rt.State {
	switch s {
	case "created", "configured", "initialized":
		return rt.StateCreated
	case "running", "paused", "stopping":
		return rt.StateRunning
	case "exited", "stopped":
		return rt.StateExited
	}
	return rt.StateUnknown
}

// Logs implements rt.Runtime.
func (p *Podman) Logs(ctx context.Context, id string, opts rt.LogOptions, w io.Writer) error {
	c, err := p.ctx(ctx)
	if err != nil {
		return err
	}
	lo := new(containers.LogOptions).WithStdout(true).WithStderr(true).WithFollow(opts.Follow).WithTimestamps(opts.Timestamps)
	if opts.TailLines != nil {
		lo = lo.WithTail(strconv.FormatInt(*opts.TailLines, 10))
	}
	if !opts.Since.IsZero() {
		lo = lo.WithSince(opts.Since.Format(time.RFC3339Nano))
	}
	lines := make(chan string, 64)
	errLines := make(chan string, 64)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var writeErr error
	drain := func(ch chan string) {
		defer wg.Done()
		for l := range ch {
			mu.Lock()
			if writeErr == nil {
				_, writeErr = io.WriteString(w, l)
			}
			mu.Unlock()
		}
	}
	wg.Add(2)
	go drain(lines)
	go drain(errLines)
	err = containers.Logs(c, id, lo, lines, errLines)
	close(lines)
	close(errLines)
	wg.Wait()
	if err != nil && ctx.Err() == nil {
		return wrap("logs", err)
	}
	return writeErr
}
