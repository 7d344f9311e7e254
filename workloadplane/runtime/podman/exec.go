package podman

import (
	"bufio"
	"context"
	"fmt"

	"github.com/containers/podman/v5/pkg/api/handlers"
	"github.com/containers/podman/v5/pkg/bindings/containers"

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
	defer containers.ExecRemove(c, session, new(containers.ExecRemoveOptions).WithForce(true))
	start := new(containers.ExecStartAndAttachOptions).
		WithAttachOutput(opts.Stdout != nil).WithAttachError(opts.Stderr != nil && !opts.TTY).WithAttachInput(opts.Stdin != nil)
	if opts.Stdout != nil {
		start = start.WithOutputStream(opts.Stdout)
	}
	if opts.Stderr != nil && !opts.TTY {
		start = start.WithErrorStream(opts.Stderr)
	}
	if opts.Stdin != nil {
		start = start.WithInputStream(*bufio.NewReader(opts.Stdin))
	}
	if opts.Resize != nil {
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case <-done:
					return
				case sz, ok := <-opts.Resize:
					if !ok {
						return
					}
					containers.ResizeExecTTY(c, session, new(containers.ResizeExecTTYOptions).WithWidth(int(sz.Width)).WithHeight(int(sz.Height)))
				}
			}
		}()
	}
	if err := containers.ExecStartAndAttach(c, session, start); err != nil {
		return 0, wrap("exec", err)
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
