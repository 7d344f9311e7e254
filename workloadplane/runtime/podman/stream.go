package podman

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	goruntime "runtime"
	"strconv"

	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/pods"
	"golang.org/x/sys/unix"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

var (
	_ rt.Attacher   = (*Podman)(nil)
	_ rt.PortDialer = (*Podman)(nil)
)

// Attach implements rt.Attacher with Podman's attach, which needs the
// container created with stdin open (rt.Spec.Stdin) for opts.Stdin to
// reach it.
func (p *Podman) Attach(ctx context.Context, id string, opts rt.ExecOptions) error {
	c, err := p.ctx(ctx)
	if err != nil {
		return err
	}
	d, err := containers.Inspect(c, id, nil)
	if err != nil {
		return wrap("attach", err)
	}
	if d.State == nil || !d.State.Running {
		return fmt.Errorf("podman attach: %w", rt.ErrNotRunning)
	}
	stop := resizeLoop(opts.Resize, func(sz rt.TermSize) {
		containers.ResizeContainerTTY(c, id, new(containers.ResizeTTYOptions).WithWidth(int(sz.Width)).WithHeight(int(sz.Height)))
	})
	defer stop()
	// The bindings call reflect's IsNil on the streams, which panics on
	// a struct; they get pointers.
	var stdin io.Reader
	var stdout, stderr io.Writer
	if opts.Stdin != nil {
		stdin = &struct{ io.Reader }{opts.Stdin}
	}
	if opts.Stdout != nil {
		stdout = &struct{ io.Writer }{opts.Stdout}
	}
	if opts.Stderr != nil && !opts.TTY {
		stderr = &struct{ io.Writer }{opts.Stderr}
	}
	// The bindings' attach does not end with its context; it ends at the
	// first write after the caller's streams are closed, or with the
	// container.
	done := make(chan error, 1)
	go func() {
		done <- containers.Attach(c, id, stdin, stdout, stderr, nil, new(containers.AttachOptions).WithStream(true).WithLogs(false))
	}()
	select {
	case err := <-done:
		return wrap("attach", err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// resizeLoop calls fn for every size from sizes until the returned stop.
func resizeLoop(sizes <-chan rt.TermSize, fn func(rt.TermSize)) (stop func()) {
	if sizes == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case sz, ok := <-sizes:
				if !ok {
					return
				}
				fn(sz)
			}
		}
	}()
	return func() { close(done) }
}

// DialPort implements rt.PortDialer: it connects from inside the network
// namespace of the sandbox's infra container, as kubelet's port-forward
// does, so a server listening on the pod's localhost only is reached too.
// Entering a network namespace needs CAP_SYS_ADMIN (a rootful node).
func (p *Podman) DialPort(ctx context.Context, sandboxID string, port int32) (net.Conn, error) {
	c, err := p.ctx(ctx)
	if err != nil {
		return nil, err
	}
	pod, err := pods.Inspect(c, sandboxID, nil)
	if err != nil {
		return nil, wrap("port-forward", err)
	}
	d, err := containers.Inspect(c, pod.InfraContainerID, nil)
	if err != nil {
		return nil, wrap("port-forward", err)
	}
	if d.State == nil || !d.State.Running || d.State.Pid == 0 {
		return nil, fmt.Errorf("podman port-forward: sandbox %s: %w", sandboxID, rt.ErrNotRunning)
	}
	return dialInNetns(ctx, fmt.Sprintf("/proc/%d/ns/net", d.State.Pid), port)
}

// dialInNetns connects to localhost:port with a socket created inside the
// network namespace at path. The socket stays in that namespace; the thread
// that made it returns to its own namespace, or dies with its goroutine if
// it cannot.
func dialInNetns(ctx context.Context, path string, port int32) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		goruntime.LockOSThread()
		conn, restored, err := func() (net.Conn, bool, error) {
			self, err := os.Open("/proc/thread-self/ns/net")
			if err != nil {
				return nil, true, err
			}
			defer self.Close()
			target, err := os.Open(path)
			if err != nil {
				return nil, true, err
			}
			defer target.Close()
			if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
				return nil, true, fmt.Errorf("enter the pod's network namespace: %w", err)
			}
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
			return conn, unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil, err
		}()
		if restored {
			goruntime.UnlockOSThread()
		}
		ch <- result{conn, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("podman port-forward to port %d: %w", port, r.err)
	}
	return r.conn, nil
}
