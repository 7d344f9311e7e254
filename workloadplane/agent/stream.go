package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// StreamProtocol is the libp2p protocol on which a node serves the
// streaming server of its pods (StreamHandler) to the other nodes' APIs,
// which proxy kubectl exec, attach and port-forward to it
// (docs/protocols.md).
const StreamProtocol = "/mycel/stream/1.0.0"

const (
	// streamIdleTimeout closes a session with no traffic, as kubelet's
	// --streaming-connection-idle-timeout (4h) does.
	streamIdleTimeout = 4 * time.Hour
	// streamCreationTimeout bounds the wait for a client's SPDY streams.
	streamCreationTimeout = remotecommand.DefaultStreamCreationTimeout
)

// StreamHandler serves exec, attach and port-forward for the pods of this
// node at kubelet's paths, with kubelet's streaming server
// (k8s.io/cri-streaming): SPDY, and the WebSocket protocols up to v4;
// the API in front translates kubectl's WebSocket v5 to SPDY.
//
//	/exec/{namespace}/{pod}/{uid}/{container}?command=…&input=1&output=1&error=1&tty=1
//	/attach/{namespace}/{pod}/{uid}/{container}?input=1&output=1&error=1&tty=1
//	/portForward/{namespace}/{pod}/{uid}[?port=…]
//	/usage (GET: a UsageReport, see Usage)
//
// It authenticates no one: only the node itself and members of the fabric
// reach it, and the API authorizes the user first.
func (a *Agent) StreamHandler() http.Handler {
	s := streamServer{a}
	mux := http.NewServeMux()
	mux.HandleFunc("/exec/{namespace}/{pod}/{uid}/{container}", s.serveExec)
	mux.HandleFunc("/attach/{namespace}/{pod}/{uid}/{container}", s.serveAttach)
	mux.HandleFunc("/portForward/{namespace}/{pod}/{uid}", s.servePortForward)
	mux.HandleFunc("GET "+UsagePath, s.serveUsage)
	return mux
}

// streamServer adapts the runtime to kubelet's streaming interfaces.
type streamServer struct{ a *Agent }

func (s streamServer) serveExec(w http.ResponseWriter, r *http.Request) {
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	if _, ok := rt.As[rt.Execer](s.a.cfg.Runtime); !ok {
		writeStatus(w, s.a.notSupported("exec"))
		return
	}
	uid, container := r.PathValue("uid"), r.PathValue("container")
	if _, err := s.a.runningContainer(r.Context(), uid, container); err != nil {
		writeStatus(w, err)
		return
	}
	remotecommand.ServeExec(w, r, s, r.PathValue("pod"), uid, container, r.URL.Query()["command"], opts,
		streamIdleTimeout, streamCreationTimeout, remotecommandconsts.SupportedStreamingProtocols)
}

func (s streamServer) serveAttach(w http.ResponseWriter, r *http.Request) {
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	if _, ok := rt.As[rt.Attacher](s.a.cfg.Runtime); !ok {
		writeStatus(w, s.a.notSupported("attach"))
		return
	}
	uid, container := r.PathValue("uid"), r.PathValue("container")
	if _, err := s.a.runningContainer(r.Context(), uid, container); err != nil {
		writeStatus(w, err)
		return
	}
	remotecommand.ServeAttach(w, r, s, r.PathValue("pod"), uid, container, opts,
		streamIdleTimeout, streamCreationTimeout, remotecommandconsts.SupportedStreamingProtocols)
}

func (s streamServer) servePortForward(w http.ResponseWriter, r *http.Request) {
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	if _, ok := rt.As[rt.PortDialer](s.a.cfg.Runtime); !ok {
		writeStatus(w, s.a.notSupported("port-forward"))
		return
	}
	if _, err := s.a.runningSandbox(r.Context(), r.PathValue("uid")); err != nil {
		writeStatus(w, err)
		return
	}
	portforward.ServePortForward(w, r, s, r.PathValue("pod"), r.PathValue("uid"), opts,
		streamIdleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
}

// ExecInContainer implements remotecommand.Executor. A non-zero exit is a
// utilexec.CodeExitError, which the server reports as kubectl expects.
func (s streamServer) ExecInContainer(ctx context.Context, _, uid, container string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	ex, _ := rt.As[rt.Execer](s.a.cfg.Runtime)
	ctr, err := s.a.runningContainer(ctx, uid, container)
	if err != nil {
		return err
	}
	code, err := ex.Exec(ctx, ctr.ID, streamOptions(ctx, cmd, in, out, errw, tty, resize))
	if err != nil {
		return err
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
	}
	return nil
}

// AttachContainer implements remotecommand.Attacher.
func (s streamServer) AttachContainer(ctx context.Context, _, uid, container string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	at, _ := rt.As[rt.Attacher](s.a.cfg.Runtime)
	ctr, err := s.a.runningContainer(ctx, uid, container)
	if err != nil {
		return err
	}
	return at.Attach(ctx, ctr.ID, streamOptions(ctx, nil, in, out, errw, tty, resize))
}

// PortForward implements portforward.PortForwarder: it connects to port on
// the pod's localhost and copies both ways until the pod's side ends or the
// client goes.
func (s streamServer) PortForward(ctx context.Context, _, uid string, port int32, stream io.ReadWriteCloser) error {
	pd, _ := rt.As[rt.PortDialer](s.a.cfg.Runtime)
	sb, err := s.a.runningSandbox(ctx, uid)
	if err != nil {
		return err
	}
	conn, err := pd.DialPort(ctx, sb.ID, port)
	if err != nil {
		return err
	}
	defer conn.Close()
	go func() {
		io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(stream, conn)
		done <- err
	}()
	select {
	case err = <-done:
		return err
	case <-ctx.Done():
		return nil
	}
}

// streamOptions builds the runtime's options from kubelet's streams; the
// absent ones stay nil interfaces.
func streamOptions(ctx context.Context, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) rt.ExecOptions {
	opts := rt.ExecOptions{Command: cmd, TTY: tty}
	if in != nil {
		opts.Stdin = in
	}
	if out != nil {
		opts.Stdout = out
	}
	if errw != nil {
		opts.Stderr = errw
	}
	if resize != nil {
		sizes := make(chan rt.TermSize)
		go func() {
			defer close(sizes)
			for sz := range resize {
				select {
				case sizes <- rt.TermSize{Width: sz.Width, Height: sz.Height}:
				case <-ctx.Done():
					return
				}
			}
		}()
		opts.Resize = sizes
	}
	return opts
}

// runningContainer is the latest attempt of container in pod uid, which
// must be running.
func (a *Agent) runningContainer(ctx context.Context, uid, container string) (rt.Container, error) {
	ctrs, err := a.cfg.Runtime.List(ctx, map[string]string{rt.LabelPodUID: uid, rt.LabelContainer: container})
	if err != nil {
		return rt.Container{}, apierrors.NewServiceUnavailable(err.Error())
	}
	if len(ctrs) == 0 {
		return rt.Container{}, apierrors.NewBadRequest(fmt.Sprintf("container %q of this pod has not been started on node %s", container, a.cfg.NodeName))
	}
	sort.Slice(ctrs, func(i, j int) bool { return attemptOf(ctrs[i]) < attemptOf(ctrs[j]) })
	c := ctrs[len(ctrs)-1]
	if c.State != rt.StateRunning {
		return rt.Container{}, apierrors.NewBadRequest(fmt.Sprintf("container %q is not running (it is %s); wait for it to start, or see `kubectl logs --previous`", container, c.State))
	}
	return c, nil
}

// runningSandbox is the running sandbox of pod uid.
func (a *Agent) runningSandbox(ctx context.Context, uid string) (rt.Sandbox, error) {
	sbs, ok := a.cfg.Runtime.(rt.Sandboxes)
	if !ok {
		return rt.Sandbox{}, a.notSupported("port-forward")
	}
	list, err := sbs.ListSandboxes(ctx, map[string]string{rt.LabelPodUID: uid})
	if err != nil {
		return rt.Sandbox{}, apierrors.NewServiceUnavailable(err.Error())
	}
	for _, sb := range list {
		if sb.Running {
			return sb, nil
		}
	}
	return rt.Sandbox{}, apierrors.NewBadRequest(fmt.Sprintf("this pod has no running sandbox on node %s (pods started before this version run outside one until they restart)", a.cfg.NodeName))
}

func (a *Agent) notSupported(what string) error {
	return apierrors.NewBadRequest(fmt.Sprintf("%s is not supported by the container runtime of node %s", what, a.cfg.NodeName))
}

// writeStatus answers an HTTP request with err as a Status, before any
// upgrade; the API passes it on to kubectl.
func writeStatus(w http.ResponseWriter, err error) {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		se = apierrors.NewInternalError(err)
	}
	st := se.Status()
	st.Kind, st.APIVersion = "Status", "v1"
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(st.Code))
	json.NewEncoder(w).Encode(st)
}
