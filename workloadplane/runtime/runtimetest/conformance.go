package runtimetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// Suite describes a runtime to Conformance: how to make one and what its
// images do. The same suite runs against the fake and sim runtimes in unit
// tests and against Podman in e2e.
type Suite struct {
	// New returns the runtime under test.
	New func(t *testing.T) rt.Runtime
	// Image is present locally; with Args its containers run until
	// stopped.
	Image string
	Args  []string
	// MissingImage is absent and cannot be pulled; "" skips that check
	// (sim has every image).
	MissingImage string
	// ExitArgs make a container of Image exit by itself with code soon
	// after it starts; Exit instead makes a running container exit (for
	// fakes). With neither, the exit check is skipped.
	ExitArgs func(code int) []string
	Exit     func(r rt.Runtime, id string, code int32)
	// LogLine is written by a running container of Image; "" skips the
	// logs check.
	LogLine string
	// ExecCommand, run in a running container of Image, writes ExecOutput
	// to stdout and exits with code 3; nil skips the exec checks (a
	// runtime that implements rt.Execer must set it).
	ExecCommand []string
	ExecOutput  string
	// Wait bounds how long a container may take to reach a state; zero
	// means 30s.
	Wait time.Duration
}

// Conformance checks the contract of rt.Runtime that the agent relies on.
func Conformance(t *testing.T, s Suite) {
	if s.Wait == 0 {
		s.Wait = 30 * time.Second
	}
	ctx := context.Background()
	r := s.New(t)
	// Labels unique to this run, so other containers on the engine never
	// count, and cleanup removes only ours.
	b := make([]byte, 6)
	rand.Read(b)
	run := hex.EncodeToString(b)
	labels := func(n string) map[string]string { return map[string]string{"mycel.io/conformance": run, "n": n} }
	t.Cleanup(func() {
		cs, _ := r.List(ctx, map[string]string{"mycel.io/conformance": run})
		for _, c := range cs {
			r.Remove(ctx, c.ID)
		}
	})
	create := func(t *testing.T, n string, args []string) string {
		t.Helper()
		id, err := r.Create(ctx, rt.Spec{Name: "conformance-" + run + "-" + n, Image: s.Image, Args: args, Labels: labels(n)})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		return id
	}
	one := func(t *testing.T, n string) rt.Container {
		t.Helper()
		cs, err := r.List(ctx, labels(n))
		if err != nil || len(cs) != 1 {
			t.Fatalf("List by labels: %d containers, %v; want 1", len(cs), err)
		}
		return cs[0]
	}
	waitFor := func(t *testing.T, n string, state rt.State) rt.Container {
		t.Helper()
		deadline := time.Now().Add(s.Wait)
		for {
			c := one(t, n)
			if c.State == state {
				return c
			}
			if time.Now().After(deadline) {
				t.Fatalf("container %s is %s after %s, want %s", n, c.State, s.Wait, state)
			}
			time.Sleep(50 * time.Millisecond) // the runtime announces no state changes
		}
	}

	t.Run("Info", func(t *testing.T) {
		info, err := r.Info(ctx)
		if err != nil || info.Name == "" || info.Version == "" {
			t.Fatalf("Info: %+v, %v", info, err)
		}
	})
	t.Run("MissingImage", func(t *testing.T) {
		if s.MissingImage == "" {
			t.Skip("the runtime has every image")
		}
		if err := r.EnsureImage(ctx, s.MissingImage, false); !errors.Is(err, rt.ErrImageNotFound) {
			t.Fatalf("EnsureImage of a missing image: %v, want ErrImageNotFound", err)
		}
	})
	t.Run("Lifecycle", func(t *testing.T) {
		if err := r.EnsureImage(ctx, s.Image, false); err != nil {
			t.Fatalf("EnsureImage of a local image: %v", err)
		}
		id := create(t, "life", s.Args)
		if c := one(t, "life"); c.State != rt.StateCreated || c.ID != id || c.Labels["n"] != "life" {
			t.Fatalf("after Create: %+v", c)
		}
		if err := r.Start(ctx, id); err != nil {
			t.Fatalf("start: %v", err)
		}
		if c := waitFor(t, "life", rt.StateRunning); c.StartedAt.IsZero() {
			t.Fatalf("running without a start time: %+v", c)
		}
		if err := r.Stop(ctx, id, time.Second); err != nil {
			t.Fatalf("stop: %v", err)
		}
		waitFor(t, "life", rt.StateExited)
		if err := r.Stop(ctx, id, time.Second); err != nil {
			t.Fatalf("stopping a stopped container: %v", err)
		}
		if err := r.Remove(ctx, id); err != nil {
			t.Fatalf("remove: %v", err)
		}
		if cs, err := r.List(ctx, labels("life")); err != nil || len(cs) != 0 {
			t.Fatalf("after Remove: %d containers, %v", len(cs), err)
		}
		if err := r.Remove(ctx, id); err != nil {
			t.Fatalf("removing a removed container: %v", err)
		}
	})
	t.Run("ListFiltersByEveryLabel", func(t *testing.T) {
		create(t, "a", s.Args)
		create(t, "b", s.Args)
		if c := one(t, "a"); c.Labels["n"] != "a" {
			t.Fatalf("List(n=a) gave %+v", c)
		}
		cs, err := r.List(ctx, map[string]string{"mycel.io/conformance": run, "n": "nobody"})
		if err != nil || len(cs) != 0 {
			t.Fatalf("List of a label no container has: %d, %v", len(cs), err)
		}
	})
	t.Run("ExitCode", func(t *testing.T) {
		args := s.Args
		switch {
		case s.ExitArgs != nil:
			args = s.ExitArgs(3)
		case s.Exit == nil:
			t.Skip("containers of this runtime do not exit by themselves")
		}
		id := create(t, "exit", args)
		if err := r.Start(ctx, id); err != nil {
			t.Fatalf("start: %v", err)
		}
		if s.Exit != nil {
			waitFor(t, "exit", rt.StateRunning)
			s.Exit(r, id, 3)
		}
		if c := waitFor(t, "exit", rt.StateExited); c.ExitCode != 3 || c.FinishedAt.IsZero() {
			t.Fatalf("exited with %d at %v, want 3", c.ExitCode, c.FinishedAt)
		}
	})
	t.Run("Exec", func(t *testing.T) {
		ex, ok := r.(rt.Execer)
		if !ok || s.ExecCommand == nil {
			t.Skip("the runtime does not exec")
		}
		id := create(t, "exec", s.Args)
		if _, err := ex.Exec(ctx, id, rt.ExecOptions{Command: s.ExecCommand}); !errors.Is(err, rt.ErrNotRunning) {
			t.Fatalf("exec in a container that is not running: %v, want ErrNotRunning", err)
		}
		if err := r.Start(ctx, id); err != nil {
			t.Fatalf("start: %v", err)
		}
		waitFor(t, "exec", rt.StateRunning)
		var out bytes.Buffer
		code, err := ex.Exec(ctx, id, rt.ExecOptions{Command: s.ExecCommand, Stdout: &out})
		if err != nil || code != 3 || out.String() != s.ExecOutput {
			t.Fatalf("exec: code %d, output %q, %v; want 3, %q", code, out.String(), err, s.ExecOutput)
		}
	})
	t.Run("Stats", func(t *testing.T) {
		sr, ok := r.(rt.StatsReader)
		if !ok {
			t.Skip("the runtime reports no usage")
		}
		id := create(t, "stats", s.Args)
		if err := r.Start(ctx, id); err != nil {
			t.Fatalf("start: %v", err)
		}
		waitFor(t, "stats", rt.StateRunning)
		got, err := sr.Stats(ctx)
		if err != nil || got[id].Memory == 0 {
			t.Fatalf("Stats of a running container: %+v, %v; want its memory", got[id], err)
		}
		if err := r.Stop(ctx, id, time.Second); err != nil {
			t.Fatalf("stop: %v", err)
		}
		if got, err := sr.Stats(ctx); err != nil {
			t.Fatalf("Stats: %v", err)
		} else if _, ok := got[id]; ok {
			t.Fatalf("Stats reports stopped container %s", id)
		}
	})
	t.Run("Sandbox", func(t *testing.T) {
		sbs, ok := r.(rt.Sandboxes)
		if !ok {
			t.Skip("the runtime has no sandboxes")
		}
		sb, err := sbs.CreateSandbox(ctx, rt.SandboxSpec{Name: "conformance-" + run + "-sb", Hostname: "sb", Labels: labels("sb")})
		if err != nil {
			t.Fatalf("create sandbox: %v", err)
		}
		if !sb.Running || sb.IP == "" {
			t.Fatalf("created sandbox %+v, want running with an IP", sb)
		}
		if cs, err := r.List(ctx, labels("sb")); err != nil || len(cs) != 0 {
			t.Fatalf("List by a sandbox's labels: %d containers, %v; want none (its infrastructure is not a container)", len(cs), err)
		}
		listed, err := sbs.ListSandboxes(ctx, labels("sb"))
		if err != nil || len(listed) != 1 || listed[0].ID != sb.ID || listed[0].IP != sb.IP {
			t.Fatalf("ListSandboxes = %+v, %v; want the one created", listed, err)
		}
		id, err := r.Create(ctx, rt.Spec{Name: "conformance-" + run + "-in-sb", Image: s.Image, Args: s.Args, Labels: labels("in-sb"), Sandbox: sb.ID})
		if err != nil {
			t.Fatalf("create in sandbox: %v", err)
		}
		if err := r.Start(ctx, id); err != nil {
			t.Fatalf("start in sandbox: %v", err)
		}
		waitFor(t, "in-sb", rt.StateRunning)
		if err := sbs.RemoveSandbox(ctx, sb.ID); err != nil {
			t.Fatalf("remove sandbox: %v", err)
		}
		if cs, err := r.List(ctx, labels("in-sb")); err != nil || len(cs) != 0 {
			t.Fatalf("after RemoveSandbox its container is still listed: %d, %v", len(cs), err)
		}
		if left, err := sbs.ListSandboxes(ctx, labels("sb")); err != nil || len(left) != 0 {
			t.Fatalf("after RemoveSandbox: %d sandboxes, %v", len(left), err)
		}
		if err := sbs.RemoveSandbox(ctx, sb.ID); err != nil {
			t.Fatalf("removing a removed sandbox: %v", err)
		}
	})
	t.Run("Logs", func(t *testing.T) {
		if s.LogLine == "" {
			t.Skip("containers of this runtime write no logs")
		}
		id := create(t, "logs", s.Args)
		if err := r.Start(ctx, id); err != nil {
			t.Fatalf("start: %v", err)
		}
		deadline := time.Now().Add(s.Wait)
		for {
			var buf bytes.Buffer
			err := r.Logs(ctx, id, rt.LogOptions{}, &buf)
			if err == nil && strings.Contains(buf.String(), s.LogLine) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("logs %q (%v) lack %q", buf.String(), err, s.LogLine)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
