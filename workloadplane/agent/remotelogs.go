package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// LogsProtocol is the libp2p protocol on which a node's agent serves the
// logs of its pods to the other nodes of the fabric, so that any node's
// API answers `kubectl logs` (docs/protocols.md).
const LogsProtocol = "/mycel/logs/1.0.0"

// maxLogRequest bounds a logs request.
const maxLogRequest = 64 << 10

// Dialer opens streams to other nodes' agents.
type Dialer interface {
	// Dial opens a LogsProtocol stream to the agent of the node named
	// node, mutually authenticated as fabric members.
	Dial(ctx context.Context, node string) (io.ReadWriteCloser, error)
}

// logsRequest is the requester's one message: which pod (its UID must
// match the server's copy) and the `kubectl logs` options.
type logsRequest struct {
	Namespace string                `json:"namespace"`
	Name      string                `json:"name"`
	UID       types.UID             `json:"uid"`
	Options   *corev1.PodLogOptions `json:"options"`
}

// logsHeader is the server's first line: empty, then the log bytes until
// the stream ends; or the Status of why there are none.
type logsHeader struct {
	Status *metav1.Status `json:"status,omitempty"`
}

// streamRemote asks the agent of pod's node for its logs.
func (a *Agent) streamRemote(ctx context.Context, pod *corev1.Pod, opts *corev1.PodLogOptions, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := a.cfg.Peers.Dial(ctx, pod.Spec.NodeName)
	if err != nil {
		return apierrors.NewServiceUnavailable(fmt.Sprintf("cannot reach node %s for the logs of %s: %v", pod.Spec.NodeName, pod.Name, err))
	}
	// Closing the stream ends a followed stream at the other end.
	go func() {
		<-ctx.Done()
		s.Close()
	}()
	req, _ := json.Marshal(logsRequest{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, Options: opts})
	if _, err := s.Write(append(req, '\n')); err != nil {
		return apierrors.NewServiceUnavailable(fmt.Sprintf("logs of %s from node %s: %v", pod.Name, pod.Spec.NodeName, err))
	}
	r := bufio.NewReader(s)
	line, err := r.ReadBytes('\n')
	var h logsHeader
	if err == nil {
		err = json.Unmarshal(line, &h)
	}
	if err != nil {
		return apierrors.NewServiceUnavailable(fmt.Sprintf("logs of %s from node %s: %v", pod.Name, pod.Spec.NodeName, err))
	}
	if h.Status != nil {
		return &apierrors.StatusError{ErrStatus: *h.Status}
	}
	if _, err := io.Copy(w, r); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// ServeLogs answers one LogsProtocol stream from another node with the
// logs of a pod on this node, until they end, the requester goes away or
// ctx is done.
func (a *Agent) ServeLogs(ctx context.Context, s io.ReadWriteCloser) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer s.Close()
	fail := func(err error) {
		st := apierrors.NewInternalError(err).ErrStatus
		var se apierrors.APIStatus
		if errors.As(err, &se) {
			st = se.Status()
		}
		b, _ := json.Marshal(logsHeader{Status: &st})
		s.Write(append(b, '\n'))
	}
	var req logsRequest
	if err := json.NewDecoder(io.LimitReader(s, maxLogRequest)).Decode(&req); err != nil || req.Options == nil {
		fail(apierrors.NewBadRequest(fmt.Sprintf("malformed logs request: %v", err)))
		return
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name}}
	if err := a.cfg.Client.Get(ctx, pod); err != nil {
		fail(err)
		return
	}
	if pod.UID != req.UID || pod.Spec.NodeName != a.cfg.NodeName {
		fail(apierrors.NewNotFound(corev1.Resource("pods"), req.Name))
		return
	}
	// The requester writes nothing more: a read that returns means it has
	// gone (closed or reset the stream), and a followed stream ends.
	go func() {
		io.Copy(io.Discard, s)
		cancel()
	}()
	hw := &headerWriter{w: s}
	if err := a.streamLocal(ctx, pod, req.Options, hw); err != nil && !hw.sent {
		fail(err)
		return
	}
	hw.header()
}

// headerWriter writes the empty header before the first log bytes.
type headerWriter struct {
	w    io.Writer
	sent bool
}

func (h *headerWriter) header() {
	if !h.sent {
		h.sent = true
		h.w.Write([]byte("{}\n"))
	}
}

func (h *headerWriter) Write(p []byte) (int, error) {
	h.header()
	return h.w.Write(p)
}
