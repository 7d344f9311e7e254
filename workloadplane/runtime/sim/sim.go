// Package sim is a Runtime that models a node's capacity and its
// containers' lifecycles without running anything. It exists for scale
// simulations (`mycel bench`, `mycel node --runtime=sim`) only: no process
// starts, no image is pulled, no port is published. Never use it where
// Podman is meant; a node only uses it when told to with --runtime=sim.
package sim

import (
	"context"
	"fmt"
	"io"
	"maps"
	"sort"
	"sync"
	"time"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// Name is the runtime name sim reports (node records advertise "sim/1.0").
const Name = "sim"

// Runtime is the simulated runtime.
type Runtime struct {
	// MilliCPU and MemoryBytes are the simulated machine's capacity; a
	// container whose limits do not fit in what is left fails to start.
	MilliCPU, MemoryBytes int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu         sync.Mutex
	next       int
	containers map[string]*container
}

type container struct {
	rt.Container
	spec rt.Spec
}

var _ rt.Runtime = (*Runtime)(nil)

// New returns a simulated machine with the given capacity.
func New(milliCPU, memoryBytes int64) *Runtime {
	return &Runtime{MilliCPU: milliCPU, MemoryBytes: memoryBytes, containers: map[string]*container{}}
}

func (r *Runtime) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Info reports "sim" and version 1.0.
func (r *Runtime) Info(context.Context) (rt.Info, error) {
	return rt.Info{Name: Name, Version: "1.0"}, nil
}

// EnsureImage succeeds for every image: sim has no images.
func (r *Runtime) EnsureImage(context.Context, string, bool) error { return nil }

// Create records a container.
func (r *Runtime) Create(_ context.Context, spec rt.Spec) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	id := fmt.Sprintf("sim%06d", r.next)
	r.containers[id] = &container{spec: spec, Container: rt.Container{
		ID: id, Name: spec.Name, Image: spec.Image, ImageID: "sim:" + spec.Image, Labels: maps.Clone(spec.Labels),
		State: rt.StateCreated, CreatedAt: r.now(),
	}}
	return id, nil
}

// Start runs a container if its limits fit in the capacity left.
func (r *Runtime) Start(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return fmt.Errorf("sim start %s: %w", id, rt.ErrNotFound)
	}
	if c.State == rt.StateRunning {
		return nil
	}
	cpu, mem := r.usedLocked()
	if cpu+c.spec.MilliCPU > r.MilliCPU || mem+c.spec.MemoryBytes > r.MemoryBytes {
		c.State, c.ExitCode, c.Error = rt.StateExited, 137, "sim: the simulated machine has no room for this container's limits"
		c.OOMKilled = mem+c.spec.MemoryBytes > r.MemoryBytes
		c.FinishedAt = r.now()
		return nil
	}
	c.State, c.ExitCode, c.Error, c.StartedAt = rt.StateRunning, 0, "", r.now()
	return nil
}

// Stop stops a running container (exit code 0).
func (r *Runtime) Stop(_ context.Context, id string, _ time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return fmt.Errorf("sim stop %s: %w", id, rt.ErrNotFound)
	}
	if c.State == rt.StateRunning {
		c.State, c.FinishedAt = rt.StateExited, r.now()
	}
	return nil
}

// Remove forgets a container.
func (r *Runtime) Remove(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.containers, id)
	return nil
}

// List returns the containers carrying all of labels, oldest first.
func (r *Runtime) List(_ context.Context, labels map[string]string) ([]rt.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []rt.Container
	for _, c := range r.containers {
		match := true
		for k, v := range labels {
			if c.Labels[k] != v {
				match = false
				break
			}
		}
		if match {
			cc := c.Container
			cc.Labels = maps.Clone(c.Labels)
			out = append(out, cc)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Logs writes one line saying that simulated containers have no output.
func (r *Runtime) Logs(_ context.Context, id string, _ rt.LogOptions, w io.Writer) error {
	r.mu.Lock()
	_, ok := r.containers[id]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("sim logs %s: %w", id, rt.ErrNotFound)
	}
	_, err := io.WriteString(w, "sim: simulated containers produce no output\n")
	return err
}

// Used returns the limits of the running containers.
func (r *Runtime) Used() (milliCPU, memoryBytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.usedLocked()
}

func (r *Runtime) usedLocked() (cpu, mem int64) {
	for _, c := range r.containers {
		if c.State == rt.StateRunning {
			cpu += c.spec.MilliCPU
			mem += c.spec.MemoryBytes
		}
	}
	return cpu, mem
}
