package agent

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// waitState is why a container that should run has no running container
// yet (image missing, bad config), with the backoff before the next try.
type waitState struct {
	reason, message string
	failures        int
	next            time.Time
}

func waitKey(pod *corev1.Pod, container string) string { return string(pod.UID) + "/" + container }

// backoff is the delay before the n-th retry (n >= 1).
func (a *Agent) backoff(n int) time.Duration {
	d := a.cfg.BackoffBase
	for i := 1; i < n && d < a.cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, a.cfg.BackoffMax)
}

func shouldRestart(policy corev1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case corev1.RestartPolicyAlways:
		return true
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return false
}

// restartAt is when an exited container's next attempt may start.
func (a *Agent) restartAt(c rt.Container) time.Time {
	n := attemptOf(c) + 1
	if !c.StartedAt.IsZero() && c.FinishedAt.Sub(c.StartedAt) >= 10*time.Minute {
		n = 1 // it ran long enough: the backoff starts over, as in Kubernetes
	}
	return c.FinishedAt.Add(a.backoff(n))
}

// syncContainer starts a container that has no attempt yet, and a new
// attempt of one that exited when policy says so, after the backoff.
func (a *Agent) syncContainer(ps *podSync, spec *corev1.Container, tries []rt.Container, policy corev1.RestartPolicy) error {
	if len(tries) == 0 {
		return a.startAttempt(ps, spec, 0, nil)
	}
	latest := tries[len(tries)-1]
	switch latest.State {
	case rt.StateCreated:
		return a.cfg.Runtime.Start(ps.ctx, latest.ID)
	case rt.StateExited:
		if !shouldRestart(policy, latest.ExitCode) {
			return nil
		}
		if a.cfg.Now().Before(a.restartAt(latest)) {
			return nil
		}
		a.event(ps.ctx, ps.pod, corev1.EventTypeWarning, "BackOff", fmt.Sprintf("Back-off restarting failed container %s in pod %s", spec.Name, ps.pod.Name))
		return a.startAttempt(ps, spec, attemptOf(latest)+1, tries[:len(tries)-1])
	}
	return nil
}

// startAttempt creates and starts attempt n of a container, runs its
// postStart hook, then removes stale attempts (the one before n is kept for
// `kubectl logs --previous`).
func (a *Agent) startAttempt(ps *podSync, c *corev1.Container, n int, older []rt.Container) error {
	ctx, pod := ps.ctx, ps.pod
	key := waitKey(pod, c.Name)
	a.mu.Lock()
	ws, waiting := a.waits[key]
	a.mu.Unlock()
	if waiting && a.cfg.Now().Before(ws.next) {
		return nil
	}
	fail := func(reason, msg string) error {
		a.mu.Lock()
		ws := a.waits[key]
		ws.failures++
		ws.reason, ws.message = reason, msg
		ws.next = a.cfg.Now().Add(a.backoff(ws.failures))
		a.waits[key] = ws
		a.mu.Unlock()
		a.event(ctx, pod, corev1.EventTypeWarning, "Failed", msg)
		return nil
	}
	pull := c.ImagePullPolicy != corev1.PullNever
	if err := a.cfg.Runtime.EnsureImage(ctx, c.Image, pull); err != nil {
		switch {
		case errors.Is(err, rt.ErrImageNotFound) && !pull:
			return fail("ErrImageNeverPull", fmt.Sprintf("Container image %q is not present with pull policy of Never: build or load it on this node (podman build / podman load)", c.Image))
		case errors.Is(err, rt.ErrImageNotFound):
			return fail("ImagePullBackOff", fmt.Sprintf("Failed to pull image %q: %v", c.Image, err))
		}
		return err
	}
	spec, err := a.containerSpec(ps, c, n)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fail("CreateContainerConfigError", err.Error())
	}
	id, err := a.cfg.Runtime.Create(ctx, spec)
	if err != nil {
		if errors.Is(err, rt.ErrUnavailable) {
			return err
		}
		return fail("CreateContainerError", err.Error())
	}
	a.mu.Lock()
	delete(a.waits, key)
	a.mu.Unlock()
	if err := a.cfg.Runtime.Start(ctx, id); err != nil {
		a.event(ctx, pod, corev1.EventTypeWarning, "Failed", fmt.Sprintf("Error: failed to start container %s: %v", c.Name, err))
		return err
	}
	a.event(ctx, pod, corev1.EventTypeNormal, "Started", fmt.Sprintf("Started container %s", c.Name))
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		if msg, err := a.runHandler(ps, c, id, c.Lifecycle.PostStart, a.grace(pod, nil)); err != nil {
			// As kubelet: a failed postStart hook kills the container, which
			// then restarts per the restart policy.
			a.event(ctx, pod, corev1.EventTypeWarning, "FailedPostStartHook", fmt.Sprintf("PostStartHook failed: %v %s", err, msg))
			if err := a.cfg.Runtime.Stop(ctx, id, a.grace(pod, nil)); err != nil {
				return err
			}
		}
	}
	for i, old := range older {
		if i < len(older)-1 || attemptOf(old) < n-1 {
			if err := a.cfg.Runtime.Remove(ctx, old.ID); err != nil {
				a.log.Warn("remove old attempt", "container", old.Name, "err", err)
			}
		}
	}
	return nil
}

// ContainerName is the Podman name of attempt n of a pod's container:
// readable in `podman ps`, unique per pod UID and attempt.
func ContainerName(pod *corev1.Pod, container string, n int) string {
	uid := strings.ReplaceAll(string(pod.UID), "-", "")
	if len(uid) > 8 {
		uid = uid[:8]
	}
	return fmt.Sprintf("%s_%s_%s_%s_%d", pod.Namespace, pod.Name, container, uid, n)
}

func (a *Agent) containerSpec(ps *podSync, c *corev1.Container, n int) (rt.Spec, error) {
	pod := ps.pod
	env, err := a.env(ps, c)
	if err != nil {
		return rt.Spec{}, err
	}
	mounts, err := a.mounts(pod, c, env)
	if err != nil {
		return rt.Spec{}, err
	}
	labels := a.podLabels(pod)
	labels[rt.LabelContainer] = c.Name
	labels[rt.LabelAttempt] = strconv.Itoa(n)
	s := rt.Spec{
		Name:       ContainerName(pod, c.Name, n),
		Image:      c.Image,
		Command:    expandAll(c.Command, env),
		Args:       expandAll(c.Args, env),
		WorkingDir: c.WorkingDir,
		Env:        env,
		Mounts:     mounts,
		Labels:     labels,
		Stdin:      c.Stdin,
		TTY:        c.TTY,
	}
	if ps.sandbox != nil {
		s.Sandbox = ps.sandbox.ID
	} else {
		s.Ports = hostPorts(c)
	}
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		s.MilliCPU = q.MilliValue()
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		s.MemoryBytes = q.Value()
	}
	return s, nil
}

// expandAll expands $(VAR) references in a command or its arguments.
func expandAll(args []string, env map[string]string) []string {
	if args == nil {
		return nil
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expand(a, env)
	}
	return out
}
