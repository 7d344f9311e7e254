// Package runtimetest is an in-memory runtime.Runtime for unit tests of the
// code that drives a runtime. It is a test fake at a seam: e2e tests use
// Podman.
package runtimetest

import (
	"context"
	"fmt"
	"io"
	"maps"
	"sync"
	"time"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// Fake is an in-memory runtime.
type Fake struct {
	mu         sync.Mutex
	now        func() time.Time
	next       int
	containers map[string]*rt.Container
	specs      map[string]rt.Spec
	images     map[string]bool
	sandboxes  map[string]*rt.Sandbox
	sbSpecs    map[string]rt.SandboxSpec
	down       bool
	stats      map[string]rt.Stats
	// ExecFunc answers Exec: the exit code and what the command writes to
	// its stdout. Nil runs every command successfully, writing nothing.
	ExecFunc func(id string, cmd []string) (int, string)
	// Version is what Info reports; empty means "1.0".
	Version string
	// Calls counts method calls by name.
	Calls map[string]int
}

var (
	_ rt.Runtime     = (*Fake)(nil)
	_ rt.Execer      = (*Fake)(nil)
	_ rt.Sandboxes   = (*Fake)(nil)
	_ rt.StatsReader = (*Fake)(nil)
)

// New returns a fake with the given local images.
func New(now func() time.Time, images ...string) *Fake {
	f := &Fake{now: now, containers: map[string]*rt.Container{}, specs: map[string]rt.Spec{}, images: map[string]bool{}, sandboxes: map[string]*rt.Sandbox{}, sbSpecs: map[string]rt.SandboxSpec{}, Calls: map[string]int{}}
	for _, i := range images {
		f.images[i] = true
	}
	return f
}

func (f *Fake) enter(name string) error {
	f.Calls[name]++
	if f.down {
		return fmt.Errorf("fake %s: %w", name, rt.ErrUnavailable)
	}
	return nil
}

// SetDown makes every call fail with ErrUnavailable (the engine went away).
func (f *Fake) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// Exit makes a running container exit with code.
func (f *Fake) Exit(id string, code int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	c.State, c.ExitCode, c.FinishedAt = rt.StateExited, code, f.now()
}

// Add puts a running container in place, as if another process made it.
func (f *Fake) Add(spec rt.Spec) string {
	id, _ := f.Create(context.Background(), spec)
	f.Start(context.Background(), id)
	return id
}

// SetStats sets what Stats reports for container id while it runs
// (otherwise no CPU and 1 MiB of memory).
func (f *Fake) SetStats(id string, s rt.Stats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stats == nil {
		f.stats = map[string]rt.Stats{}
	}
	f.stats[id] = s
}

// Stats implements rt.StatsReader.
func (f *Fake) Stats(context.Context) (map[string]rt.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("Stats"); err != nil {
		return nil, err
	}
	out := map[string]rt.Stats{}
	for id, c := range f.containers {
		if c.State != rt.StateRunning {
			continue
		}
		s, ok := f.stats[id]
		if !ok {
			s = rt.Stats{Memory: 1 << 20}
		}
		out[id] = s
	}
	return out, nil
}

// Spec returns the spec a container was created with.
func (f *Fake) Spec(id string) rt.Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.specs[id]
}

// Info implements rt.Runtime.
func (f *Fake) Info(context.Context) (rt.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("Info"); err != nil {
		return rt.Info{}, err
	}
	v := f.Version
	if v == "" {
		v = "1.0"
	}
	return rt.Info{Name: "fake", Version: v}, nil
}

// EnsureImage implements rt.Runtime; pulls always fail (no registry).
func (f *Fake) EnsureImage(_ context.Context, image string, pull bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("EnsureImage"); err != nil {
		return err
	}
	if f.images[image] {
		return nil
	}
	return fmt.Errorf("%w: %s", rt.ErrImageNotFound, image)
}

// Create implements rt.Runtime.
func (f *Fake) Create(_ context.Context, spec rt.Spec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("Create"); err != nil {
		return "", err
	}
	for _, c := range f.containers {
		if c.Name == spec.Name {
			return "", fmt.Errorf("fake: name %s in use", spec.Name)
		}
	}
	f.next++
	id := fmt.Sprintf("c%03d", f.next)
	f.containers[id] = &rt.Container{ID: id, Name: spec.Name, Image: spec.Image, Labels: maps.Clone(spec.Labels), State: rt.StateCreated, CreatedAt: f.now()}
	f.specs[id] = spec
	return id, nil
}

// Start implements rt.Runtime.
func (f *Fake) Start(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("Start"); err != nil {
		return err
	}
	c, ok := f.containers[id]
	if !ok {
		return rt.ErrNotFound
	}
	c.State, c.StartedAt, c.IP = rt.StateRunning, f.now(), "10.0.0."+id[1:]
	if sb := f.sandboxes[f.specs[id].Sandbox]; sb != nil {
		c.IP = sb.IP
	}
	return nil
}

// Stop implements rt.Runtime.
func (f *Fake) Stop(_ context.Context, id string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("Stop"); err != nil {
		return err
	}
	if c, ok := f.containers[id]; ok && c.State == rt.StateRunning {
		c.State, c.ExitCode, c.FinishedAt = rt.StateExited, 143, f.now()
	}
	return nil
}

// Remove implements rt.Runtime.
func (f *Fake) Remove(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("Remove"); err != nil {
		return err
	}
	delete(f.containers, id)
	return nil
}

// List implements rt.Runtime.
func (f *Fake) List(_ context.Context, labels map[string]string) ([]rt.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("List"); err != nil {
		return nil, err
	}
	var out []rt.Container
	for _, c := range f.containers {
		if carries(c.Labels, labels) {
			cp := *c
			cp.Labels = maps.Clone(c.Labels)
			out = append(out, cp)
		}
	}
	return out, nil
}

// Logs implements rt.Runtime: one line naming the container.
func (f *Fake) Logs(_ context.Context, id string, _ rt.LogOptions, w io.Writer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("Logs"); err != nil {
		return err
	}
	c, ok := f.containers[id]
	if !ok {
		return rt.ErrNotFound
	}
	_, err := fmt.Fprintf(w, "log of %s\n", c.Name)
	return err
}

// Exec implements rt.Execer with ExecFunc.
func (f *Fake) Exec(_ context.Context, id string, opts rt.ExecOptions) (int, error) {
	f.mu.Lock()
	if err := f.enter("Exec"); err != nil {
		f.mu.Unlock()
		return 0, err
	}
	c, ok := f.containers[id]
	fn := f.ExecFunc
	f.mu.Unlock()
	switch {
	case !ok:
		return 0, fmt.Errorf("fake exec in %s: %w", id, rt.ErrNotFound)
	case c.State != rt.StateRunning:
		return 0, fmt.Errorf("fake exec in %s: %w", id, rt.ErrNotRunning)
	}
	if fn == nil {
		return 0, nil
	}
	code, out := fn(id, opts.Command)
	if opts.Stdout != nil {
		io.WriteString(opts.Stdout, out)
	}
	return code, nil
}

// CreateSandbox implements rt.Sandboxes.
func (f *Fake) CreateSandbox(_ context.Context, spec rt.SandboxSpec) (rt.Sandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("CreateSandbox"); err != nil {
		return rt.Sandbox{}, err
	}
	f.next++
	id := fmt.Sprintf("s%03d", f.next)
	sb := &rt.Sandbox{ID: id, Name: spec.Name, Labels: maps.Clone(spec.Labels), Running: true, IP: "10.1.0." + id[1:]}
	f.sandboxes[id] = sb
	f.sbSpecs[id] = spec
	return *sb, nil
}

// SandboxSpec returns the spec a sandbox was created with.
func (f *Fake) SandboxSpec(id string) rt.SandboxSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sbSpecs[id]
}

// ListSandboxes implements rt.Sandboxes.
func (f *Fake) ListSandboxes(_ context.Context, labels map[string]string) ([]rt.Sandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListSandboxes"); err != nil {
		return nil, err
	}
	var out []rt.Sandbox
	for _, sb := range f.sandboxes {
		if carries(sb.Labels, labels) {
			cp := *sb
			cp.Labels = maps.Clone(sb.Labels)
			out = append(out, cp)
		}
	}
	return out, nil
}

// RemoveSandbox implements rt.Sandboxes.
func (f *Fake) RemoveSandbox(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("RemoveSandbox"); err != nil {
		return err
	}
	for cid := range f.containers {
		if f.specs[cid].Sandbox == id {
			delete(f.containers, cid)
		}
	}
	delete(f.sandboxes, id)
	return nil
}

// carries reports whether have includes every one of want.
func carries(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
