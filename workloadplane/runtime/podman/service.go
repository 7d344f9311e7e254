package podman

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// ErrNotInstalled means the podman binary is not on PATH.
var ErrNotInstalled = errors.New("podman: Podman is not installed (install it with `apt-get install -y podman runc`, or run `make up`)")

// Listening reports whether something accepts connections on the socket.
func Listening(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// EnsureService makes sure a Podman API service listens on path, starting
// `podman system service` for it when none does. The service is started in
// its own process group, in "/", so it outlives this process and whatever
// directory it was started from: containers keep being reachable across node
// restarts. It returns whether it started one.
func EnsureService(ctx context.Context, path string) (bool, error) {
	if Listening(path) {
		return false, nil
	}
	bin, err := exec.LookPath("podman")
	if err != nil {
		return false, ErrNotInstalled
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, fmt.Errorf("podman: socket dir: %w", err)
	}
	cmd := exec.Command(bin, "system", "service", "--time=0", "unix://"+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The service outlives this process, so it must not keep this
	// process's working directory: once that is removed (a node started
	// from a directory deleted later), every conmon the service spawns
	// fails ("Failed to get working directory") and every container start
	// fails with "write child: broken pipe".
	cmd.Dir = "/"
	logf, err := os.OpenFile(filepath.Join(os.TempDir(), "mycel-podman-service.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err == nil {
		cmd.Stdout, cmd.Stderr = logf, logf
		defer logf.Close()
	}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("podman: start `podman system service`: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case err := <-exited:
			return false, fmt.Errorf("podman: `podman system service` exited: %v (see %s)", err, filepath.Join(os.TempDir(), "mycel-podman-service.log"))
		case <-deadline:
			return true, fmt.Errorf("podman: `podman system service` did not listen on %s within 15s", path)
		case <-ctx.Done():
			return true, ctx.Err()
		case <-t.C:
			if Listening(path) {
				return true, nil
			}
		}
	}
}

// Open returns the runtime on socket ("" for DefaultSocket, whose service
// it starts when nothing listens there). A Podman that cannot be reached
// yet is no error (pods wait until it answers, and the node says why); a
// Podman that is not installed is.
func Open(ctx context.Context, socket string, log *slog.Logger) (*Podman, error) {
	switch {
	case socket == "":
		socket = DefaultSocket
		started, err := EnsureService(ctx, socket)
		if errors.Is(err, ErrNotInstalled) {
			return nil, err
		}
		if err != nil {
			log.Warn("Podman is not available; pods will wait until it is", "err", err)
		} else if started {
			log.Info("started `podman system service`", "socket", socket)
		}
	case !Listening(socket):
		log.Warn("nothing listens on the Podman socket yet; pods will wait until it does", "socket", socket)
	}
	p := New(socket)
	// Connect and read the service's version while the node starts: its
	// first status waits for them.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Info(ctx)
	}()
	return p, nil
}
