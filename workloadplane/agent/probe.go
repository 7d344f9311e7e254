package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// Probes and lifecycle hooks, as kubelet runs them: each probe of a running
// container is due every periodSeconds after initialDelaySeconds, runs with
// timeoutSeconds, and turns its result after successThreshold successes or
// failureThreshold failures in a row. Until a startup probe has succeeded
// the others do not run. Readiness drives the container's ready flag and
// the pod's Ready condition; a failed liveness or startup probe kills the
// container (preStop hook, SIGTERM, SIGKILL after the grace period), which
// then restarts per the pod's restartPolicy with the usual backoff. Probes
// are started by Sync (each second, and at once after a result changes), so
// their timing is kubelet's to about a second.

// Prober runs a probe's or hook's handler against a container.
type Prober interface {
	// Probe runs h against t and reports whether it succeeded; output
	// says why not, in kubelet's words. It returns when ctx ends at the
	// latest (the probe's timeout).
	Probe(ctx context.Context, t ProbeTarget, h *corev1.ProbeHandler) (ok bool, output string)
}

// ProbeTarget is the container a handler runs against.
type ProbeTarget struct {
	Pod         *corev1.Pod
	Container   *corev1.Container
	ContainerID string
	// IP is the pod's IP (its sandbox's, or the container's own).
	IP string
}

type probeKind string

const (
	startupProbe   probeKind = "Startup"
	livenessProbe  probeKind = "Liveness"
	readinessProbe probeKind = "Readiness"
)

// probeState is one probe of one container attempt.
type probeState struct {
	containerID string
	last        time.Time // when the last run started
	inFlight    bool
	successes   int
	failures    int
	// ok is the result after the thresholds (startup: passed, liveness:
	// healthy, readiness: ready); failed is set once failureThreshold is
	// reached.
	ok, failed bool
}

func probeKey(pod *corev1.Pod, container string, kind probeKind) string {
	return string(pod.UID) + "/" + container + "/" + string(kind)
}

// state returns the probe's state for attempt ctrID, fresh if the attempt
// changed; call with a.mu held.
func (a *Agent) state(key, ctrID string, kind probeKind) *probeState {
	st := a.probes[key]
	if st == nil || st.containerID != ctrID {
		// A container is live until a liveness probe says otherwise, and
		// neither started nor ready until its probes say so.
		st = &probeState{containerID: ctrID, ok: kind == livenessProbe}
		a.probes[key] = st
	}
	return st
}

// probed reports whether a running attempt has started (its startup probe
// passed, or it has none) and is ready.
func (a *Agent) probed(pod *corev1.Pod, c *corev1.Container, ctr rt.Container) (started, ready bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	started = c.StartupProbe == nil || a.state(probeKey(pod, c.Name, startupProbe), ctr.ID, startupProbe).ok
	ready = started && (c.ReadinessProbe == nil || a.state(probeKey(pod, c.Name, readinessProbe), ctr.ID, readinessProbe).ok)
	return started, ready
}

// probe starts the probes that are due for the pod's running app
// containers and kills those whose liveness or startup probe failed.
func (a *Agent) probe(ps *podSync, byName map[string][]rt.Container) {
	for i := range ps.pod.Spec.Containers {
		c := &ps.pod.Spec.Containers[i]
		tries := byName[c.Name]
		if len(tries) == 0 || tries[len(tries)-1].State != rt.StateRunning {
			continue
		}
		ctr := tries[len(tries)-1]
		if started, _ := a.probed(ps.pod, c, ctr); !started {
			if a.runProbe(ps, c, ctr, startupProbe, c.StartupProbe) {
				a.kill(ps, c, ctr, a.grace(ps.pod, c.StartupProbe), fmt.Sprintf("Container %s failed startup probe, will be restarted", c.Name))
			}
			continue
		}
		if c.LivenessProbe != nil && a.runProbe(ps, c, ctr, livenessProbe, c.LivenessProbe) {
			a.kill(ps, c, ctr, a.grace(ps.pod, c.LivenessProbe), fmt.Sprintf("Container %s failed liveness probe, will be restarted", c.Name))
		}
		if c.ReadinessProbe != nil {
			a.runProbe(ps, c, ctr, readinessProbe, c.ReadinessProbe)
		}
	}
}

// runProbe starts probe p of attempt ctr if it is due, in the background,
// and reports whether it has failed (reached its failure threshold).
func (a *Agent) runProbe(ps *podSync, c *corev1.Container, ctr rt.Container, kind probeKind, p *corev1.Probe) (failed bool) {
	key := probeKey(ps.pod, c.Name, kind)
	now := a.cfg.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.state(key, ctr.ID, kind)
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	switch {
	case st.failed:
		return true
	case st.inFlight,
		now.Before(ctr.StartedAt.Add(time.Duration(p.InitialDelaySeconds) * time.Second)),
		!st.last.IsZero() && now.Before(st.last.Add(period)):
		return false
	}
	st.inFlight, st.last = true, now
	target := ProbeTarget{Pod: ps.pod, Container: c, ContainerID: ctr.ID, IP: ps.ip(ctr)}
	a.probing.Add(1)
	go func() {
		defer a.probing.Done()
		ctx, cancel := context.WithTimeout(ps.ctx, time.Duration(max(p.TimeoutSeconds, 1))*time.Second)
		ok, out := a.cfg.Prober.Probe(ctx, target, &p.ProbeHandler)
		cancel()
		a.mu.Lock()
		before := *st
		st.inFlight = false
		if ok {
			st.successes, st.failures = st.successes+1, 0
			if st.successes >= max(int(p.SuccessThreshold), 1) {
				st.ok = true
			}
		} else {
			st.successes, st.failures = 0, st.failures+1
			if st.failures >= max(int(p.FailureThreshold), 1) {
				st.ok, st.failed = false, kind != readinessProbe
			}
		}
		changed := before.ok != st.ok || before.failed != st.failed
		a.mu.Unlock()
		if !ok && ps.ctx.Err() == nil {
			a.event(ps.ctx, ps.pod, corev1.EventTypeWarning, "Unhealthy", fmt.Sprintf("%s probe failed: %s", kind, out))
		}
		if changed {
			a.Kick()
		}
	}()
	return false
}

// ip is the address probes and hooks reach the container at.
func (ps *podSync) ip(ctr rt.Container) string {
	if ps.sandbox != nil {
		return ps.sandbox.IP
	}
	return ctr.IP
}

// grace is how long a container killed for p (nil: deleted) gets between
// SIGTERM and SIGKILL.
func (a *Agent) grace(pod *corev1.Pod, p *corev1.Probe) time.Duration {
	switch {
	case p != nil && p.TerminationGracePeriodSeconds != nil:
		return time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

// kill stops a container in the background (preStop hook, then SIGTERM
// and SIGKILL after grace), once per attempt.
func (a *Agent) kill(ps *podSync, c *corev1.Container, ctr rt.Container, grace time.Duration, why string) {
	a.mu.Lock()
	if a.killing[ctr.ID] {
		a.mu.Unlock()
		return
	}
	a.killing[ctr.ID] = true
	a.mu.Unlock()
	a.event(ps.ctx, ps.pod, corev1.EventTypeNormal, "Killing", why)
	a.stopping.Add(1)
	go func() {
		defer a.stopping.Done()
		if err := a.stopContainer(ps, c, ctr.ID, grace); err != nil && ps.ctx.Err() == nil {
			a.log.Warn("kill container", "container", ctr.Name, "err", err)
		}
		a.mu.Lock()
		delete(a.killing, ctr.ID)
		a.mu.Unlock()
		a.Kick()
	}()
}

// stopContainer runs c's preStop hook (within grace), then stops it with
// what is left of grace (at least two seconds more, as kubelet gives).
func (a *Agent) stopContainer(ps *podSync, c *corev1.Container, id string, grace time.Duration) error {
	start := time.Now()
	if c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if msg, err := a.runHandler(ps, c, id, c.Lifecycle.PreStop, grace); err != nil {
			a.event(ps.ctx, ps.pod, corev1.EventTypeWarning, "FailedPreStopHook", fmt.Sprintf("PreStopHook failed: %v %s", err, msg))
		}
	}
	left := grace - time.Since(start)
	if left < 2*time.Second && grace > 0 {
		left = 2 * time.Second
	}
	return a.cfg.Runtime.Stop(ps.ctx, id, left)
}

// runHandler runs a lifecycle hook within limit.
func (a *Agent) runHandler(ps *podSync, c *corev1.Container, id string, h *corev1.LifecycleHandler, limit time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ps.ctx, max(limit, time.Second))
	defer cancel()
	if h.Sleep != nil {
		t := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-t.C:
			return "", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	target := ProbeTarget{Pod: ps.pod, Container: c, ContainerID: id, IP: ps.ip(rt.Container{})}
	if ok, out := a.cfg.Prober.Probe(ctx, target, &corev1.ProbeHandler{Exec: h.Exec, HTTPGet: h.HTTPGet, TCPSocket: h.TCPSocket}); !ok {
		return out, errors.New("hook failed")
	}
	return "", nil
}

// netProber is the Prober of a real node: exec through the runtime,
// HTTP, TCP and gRPC to the pod's IP.
type netProber struct{ runtime rt.Runtime }

// maxProbeOutput bounds what an exec probe's output keeps for events.
const maxProbeOutput = 10 << 10

func (p netProber) Probe(ctx context.Context, t ProbeTarget, h *corev1.ProbeHandler) (bool, string) {
	switch {
	case h.Exec != nil:
		ex, ok := p.runtime.(rt.Execer)
		if !ok {
			return false, "the container runtime of this node cannot exec"
		}
		w := &limitedWriter{w: &bytes.Buffer{}, n: maxProbeOutput}
		code, err := ex.Exec(ctx, t.ContainerID, rt.ExecOptions{Command: h.Exec.Command, Stdout: w, Stderr: w})
		switch {
		case ctx.Err() != nil:
			return false, fmt.Sprintf("command %q timed out", strings.Join(h.Exec.Command, " "))
		case err != nil:
			return false, err.Error()
		case code != 0:
			w.mu.Lock()
			defer w.mu.Unlock()
			return false, fmt.Sprintf("command %q exited with %d: %s", strings.Join(h.Exec.Command, " "), code, w.w.String())
		}
		return true, ""
	case h.HTTPGet != nil:
		return p.http(ctx, t, h.HTTPGet)
	case h.TCPSocket != nil:
		port, err := resolvePort(h.TCPSocket.Port, t.Container)
		if err != nil {
			return false, err.Error()
		}
		host := h.TCPSocket.Host
		if host == "" {
			host = t.IP
		}
		conn, err := new(net.Dialer).DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	case h.GRPC != nil:
		conn, err := grpc.NewClient(net.JoinHostPort(t.IP, strconv.Itoa(int(h.GRPC.Port))), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return false, err.Error()
		}
		defer conn.Close()
		service := ""
		if h.GRPC.Service != nil {
			service = *h.GRPC.Service
		}
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return false, fmt.Sprintf("failed to connect service %q within %s: %v", net.JoinHostPort(t.IP, strconv.Itoa(int(h.GRPC.Port))), deadlineLeft(ctx), err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return false, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus())
		}
		return true, ""
	}
	return false, "the probe has no handler"
}

func deadlineLeft(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl).Round(time.Millisecond)
	}
	return 0
}

// http probes as kubelet does: success is a status in [200, 400);
// redirects are followed to the same host only.
func (p netProber) http(ctx context.Context, t ProbeTarget, g *corev1.HTTPGetAction) (bool, string) {
	port, err := resolvePort(g.Port, t.Container)
	if err != nil {
		return false, err.Error()
	}
	host := g.Host
	if host == "" {
		host = t.IP
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	u, err = u.Parse(path)
	if err != nil {
		return false, err.Error()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "kube-probe/1.32")
	req.Header.Set("Accept", "*/*")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}, // as kubelet: probes do not verify
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) >= 10 || r.URL.Hostname() != via[0].URL.Hostname() {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return false, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return true, ""
}

// resolvePort turns a probe's port (a number or a container port's name)
// into a number.
func resolvePort(port intstr.IntOrString, c *corev1.Container) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("port %q is not a port of container %s", port.StrVal, c.Name)
}

// limitedWriter keeps the first n bytes written to it and drops the rest;
// stdout and stderr may write at once.
type limitedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
	n  int
}

func (l *limitedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 {
		k := min(len(b), l.n)
		l.w.Write(b[:k])
		l.n -= k
	}
	return len(b), nil
}
