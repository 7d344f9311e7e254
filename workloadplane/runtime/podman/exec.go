package podman

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/containers/podman/v5/pkg/api/handlers"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"golang.org/x/sys/unix"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

var _ rt.Execer = (*Podman)(nil)

// Exec implements rt.Execer with an exec session attached to the caller's
// streams.
func (p *Podman) Exec(ctx context.Context, id string, opts rt.ExecOptions) (int, error) {
	c, err := p.ctx(ctx)
	if err != nil {
		return 0, err
	}
	cfg := &handlers.ExecCreateConfig{}
	cfg.Cmd = opts.Command
	cfg.Tty = opts.TTY
	cfg.AttachStdin, cfg.AttachStdout, cfg.AttachStderr = opts.Stdin != nil, opts.Stdout != nil, opts.Stderr != nil && !opts.TTY
	session, err := containers.ExecCreate(c, id, cfg)
	if err != nil {
		return 0, wrap("exec", err)
	}
	defer containers.ExecRemove(context.WithoutCancel(c), session, new(containers.ExecRemoveOptions).WithForce(true))
	start := new(containers.ExecStartAndAttachOptions).
		WithAttachOutput(opts.Stdout != nil).WithAttachError(opts.Stderr != nil && !opts.TTY).WithAttachInput(opts.Stdin != nil)
	if opts.Stdout != nil {
		start = start.WithOutputStream(opts.Stdout)
	}
	if opts.Stderr != nil && !opts.TTY {
		start = start.WithErrorStream(opts.Stderr)
	}
	if opts.Stdin != nil {
		// Podman 4.3 can lose the end of stdin when it comes before the
		// session's process has started (a `kubectl exec -i` of a short
		// input then hangs): the end waits for the process.
		in := &eofAfterStart{r: opts.Stdin, started: make(chan struct{})}
		go in.await(context.WithoutCancel(c), session)
		start = start.WithInputStream(*bufio.NewReader(in))
	}
	defer resizeLoop(opts.Resize, func(sz rt.TermSize) {
		containers.ResizeExecTTY(c, session, new(containers.ResizeExecTTYOptions).WithWidth(int(sz.Width)).WithHeight(int(sz.Height)))
	})()
	// A caller that goes away (a dropped kubectl exec) must not leave the
	// command running: kill it. Podman 4.3's API has no call for that, so
	// it is the session's process, which is this host's.
	ended := make(chan struct{})
	defer close(ended)
	go func() {
		select {
		case <-ended:
		case <-ctx.Done():
			if in, err := containers.ExecInspect(context.WithoutCancel(c), session, nil); err == nil && in.Running && in.Pid > 0 {
				unix.Kill(in.Pid, unix.SIGKILL)
			}
		}
	}()
	if err := containers.ExecStartAndAttach(c, session, start); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, wrap("exec", err)
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	in, err := containers.ExecInspect(c, session, nil)
	if err != nil {
		return 0, wrap("exec inspect", err)
	}
	if in.Running {
		return 0, fmt.Errorf("podman exec: session %s still running after its streams closed", session)
	}
	return in.ExitCode, nil
}

// eofAfterStart passes r through but holds its end until the exec session
// has a process (or a few seconds passed).
type eofAfterStart struct {
	r       io.Reader
	started chan struct{}
}

func (e *eofAfterStart) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		<-e.started
	}
	return n, err
}

func (e *eofAfterStart) await(c context.Context, session string) {
	defer close(e.started)
	for range 250 {
		if in, err := containers.ExecInspect(c, session, nil); err != nil || in.Pid > 0 || in.ExitCode != 0 {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling Podman: it announces no start
	}
}
