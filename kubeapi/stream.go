package kubeapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/proxy"
	utilproxy "k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// streamSubresources are the pod subresources that upgrade to a stream.
var streamSubresources = []string{"exec", "attach", "portforward"}

// serveStream proxies pods/exec, pods/attach and pods/portforward to the
// streaming server of the pod's node, the way kube-apiserver proxies them
// to kubelet: SPDY passes through apimachinery's UpgradeAwareHandler;
// WebSocket v5 (exec, attach) is translated to SPDY by apiserver's
// StreamTranslatorHandler, and WebSocket-tunnelled SPDY (port-forward) is
// unwrapped by its TunnelingHandler.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, req *request) error {
	if s.cfg.Streams == nil {
		return apierrors.NewServiceUnavailable(req.sub + " is not available on this node")
	}
	obj, err := s.objs.In(req.res).Get(req.namespace, req.name)
	if err != nil {
		return err
	}
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName == "" {
		return apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name))
	}
	if p := pod.Status.Phase; (p == corev1.PodSucceeded || p == corev1.PodFailed) && req.sub != "portforward" {
		return apierrors.NewBadRequest(fmt.Sprintf("cannot %s into a container in a completed pod; current phase is %s", req.sub, p))
	}
	q := r.URL.Query()
	loc := &url.URL{Scheme: "http", Host: pod.Spec.NodeName}
	params := url.Values{}
	var streamOpts utilproxy.Options
	switch req.sub {
	case "exec", "attach":
		container, err := podContainer(pod, q.Get("container"))
		if err != nil {
			return err
		}
		streamOpts = utilproxy.Options{Stdin: queryBool(q, "stdin"), Stdout: queryBool(q, "stdout"), Stderr: queryBool(q, "stderr"), Tty: queryBool(q, "tty")}
		if !streamOpts.Stdin && !streamOpts.Stdout && !streamOpts.Stderr {
			return apierrors.NewBadRequest("you must specify at least one of stdin, stdout, stderr")
		}
		if req.sub == "exec" {
			if len(q["command"]) == 0 {
				return apierrors.NewBadRequest("you must specify at least one command for the container")
			}
			params["command"] = q["command"]
		}
		for name, on := range map[string]bool{"input": streamOpts.Stdin, "output": streamOpts.Stdout, "error": streamOpts.Stderr, "tty": streamOpts.Tty} {
			if on {
				params.Set(name, "1")
			}
		}
		loc.Path = fmt.Sprintf("/%s/%s/%s/%s/%s", req.sub, pod.Namespace, pod.Name, pod.UID, container)
	case "portforward":
		for _, p := range q["ports"] {
			if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
				return apierrors.NewBadRequest(fmt.Sprintf("invalid port %q: ports must be numbers from 1 to 65535", p))
			}
			params.Add("port", p)
		}
		loc.Path = fmt.Sprintf("/portForward/%s/%s/%s", pod.Namespace, pod.Name, pod.UID)
	}
	loc.RawQuery = params.Encode()
	var h http.Handler = proxy.NewUpgradeAwareHandler(loc, s.cfg.Streams, false, true, proxyResponder{s})
	switch req.sub {
	case "portforward":
		tunnel := utilproxy.NewTunnelingHandler(h)
		h = utilproxy.NewTranslatingHandler(h, tunnel, wsstream.IsWebSocketRequestWithTunnelingProtocol)
	default:
		translator := utilproxy.NewStreamTranslatorHandler(loc, s.cfg.Streams, 0, streamOpts)
		h = utilproxy.NewTranslatingHandler(h, translator, wsstream.IsWebSocketRequestWithStreamCloseProtocol)
	}
	CancelOnHangup(h).ServeHTTP(w, r)
	return nil
}

// podContainer is the container name of an exec or attach: the one asked
// for, which must be one of pod's (init containers included), or the only
// one.
func podContainer(pod *corev1.Pod, name string) (string, error) {
	var names []string
	for _, c := range pod.Spec.InitContainers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	switch {
	case name == "" && len(pod.Spec.Containers) == 1:
		return pod.Spec.Containers[0].Name, nil
	case name == "":
		return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, names))
	case !slices.Contains(names, name):
		return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name))
	}
	return name, nil
}

func queryBool(q url.Values, key string) bool {
	v, _ := strconv.ParseBool(q.Get(key))
	return v
}

// proxyResponder reports a failure to reach the pod's node as a Status.
type proxyResponder struct{ s *Server }

func (p proxyResponder) Error(w http.ResponseWriter, _ *http.Request, err error) {
	p.s.writeError(w, apierrors.NewServiceUnavailable(fmt.Sprintf("cannot reach the pod's node: %v", err)))
}

// Hijack hands the connection to a streaming handler; the response is a
// protocol switch from then on.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("kubeapi: %T cannot be hijacked", r.ResponseWriter)
	}
	r.code = http.StatusSwitchingProtocols
	return hj.Hijack()
}

// CancelOnHangup gives h a request context that ends when the client's
// connection does, also after h has hijacked it (net/http cancels a
// hijacked request's context only when the handler returns). Streams then
// end with their client: the command of a dropped `kubectl exec` is killed,
// not left running in the container.
func CancelOnHangup(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		h.ServeHTTP(&hangupWriter{ResponseWriter: w, cancel: cancel}, r.WithContext(ctx))
	})
}

// hangupWriter hijacks into a connection whose failed reads cancel.
type hangupWriter struct {
	http.ResponseWriter
	cancel context.CancelFunc
}

func (w *hangupWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("kubeapi: %T cannot be hijacked", w.ResponseWriter)
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	c := &hangupConn{Conn: conn, cancel: w.cancel}
	// Reads go through rw's buffer first, which may hold bytes already.
	r := bufio.NewReader(hangupReader{r: rw.Reader, cancel: w.cancel})
	return c, bufio.NewReadWriter(r, rw.Writer), nil
}

func (w *hangupWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

type hangupConn struct {
	net.Conn
	cancel context.CancelFunc
}

func (c *hangupConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.cancel()
	}
	return n, err
}

func (c *hangupConn) Close() error {
	c.cancel()
	return c.Conn.Close()
}

type hangupReader struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (h hangupReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if err != nil {
		h.cancel()
	}
	return n, err
}
