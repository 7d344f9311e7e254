package agent

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// podSync is one sync of one pod: the pod, its sandbox, and the ConfigMaps
// and Secrets read so far (each is read once per sync).
type podSync struct {
	ctx context.Context
	a   *Agent
	pod *corev1.Pod
	// sandbox holds the pod's network namespace; nil on runtimes without
	// sandboxes, whose containers each have their own.
	sandbox    *rt.Sandbox
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
}

func (a *Agent) podSync(ctx context.Context, pod *corev1.Pod, sb *rt.Sandbox) *podSync {
	return &podSync{ctx: ctx, a: a, pod: pod, sandbox: sb, configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
}

// podLabels are the labels of everything the agent creates for pod.
func (a *Agent) podLabels(pod *corev1.Pod) map[string]string {
	return map[string]string{
		rt.LabelNamespace:   pod.Namespace,
		rt.LabelPod:         pod.Name,
		rt.LabelPodUID:      string(pod.UID),
		rt.LabelNode:        a.cfg.NodeName,
		rt.LabelTrustDomain: a.cfg.TrustDomain,
		rt.LabelPeerID:      a.cfg.PeerID,
	}
}

// SandboxName is the Podman pod name of a Kubernetes pod's sandbox.
func SandboxName(pod *corev1.Pod) string {
	uid := strings.ReplaceAll(string(pod.UID), "-", "")
	if len(uid) > 8 {
		uid = uid[:8]
	}
	return fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, uid)
}

// ensureSandbox returns the pod's running sandbox, creating it (with every
// container's host ports) if it has none. A sandbox that stopped (the
// machine rebooted) is replaced, with its containers, as kubelet does.
func (a *Agent) ensureSandbox(ctx context.Context, pod *corev1.Pod, sb *rt.Sandbox, ctrs []rt.Container) (*rt.Sandbox, []rt.Container, error) {
	sbs, ok := a.cfg.Runtime.(rt.Sandboxes)
	if !ok {
		return nil, ctrs, nil
	}
	if sb != nil && sb.Running {
		return sb, ctrs, nil
	}
	if sb != nil {
		a.log.Info("replacing a stopped pod sandbox", "pod", pod.Namespace+"/"+pod.Name)
		if err := sbs.RemoveSandbox(ctx, sb.ID); err != nil {
			return nil, ctrs, err
		}
		ctrs = nil
	}
	spec := rt.SandboxSpec{Name: SandboxName(pod), Hostname: pod.Name, Labels: a.podLabels(pod)}
	if pod.Spec.Hostname != "" {
		spec.Hostname = pod.Spec.Hostname
	}
	for _, c := range pod.Spec.Containers {
		spec.Ports = append(spec.Ports, hostPorts(&c)...)
	}
	created, err := sbs.CreateSandbox(ctx, spec)
	if err != nil {
		return nil, ctrs, err
	}
	return &created, ctrs, nil
}

// hostPorts are the ports a container publishes on the node.
func hostPorts(c *corev1.Container) []rt.Port {
	var out []rt.Port
	for _, p := range c.Ports {
		if p.HostPort == 0 {
			continue // as in Kubernetes, containerPort alone publishes nothing on the host
		}
		out = append(out, rt.Port{ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIP: p.HostIP, Protocol: strings.ToLower(string(p.Protocol))})
	}
	return out
}

func (a *Agent) syncPod(ctx context.Context, pod *corev1.Pod, ctrs []rt.Container, sb *rt.Sandbox) error {
	if pod.DeletionTimestamp != nil {
		a.startTermination(ctx, pod, ctrs, sb)
		return nil
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	sb, ctrs, err := a.ensureSandbox(ctx, pod, sb, ctrs)
	if err != nil {
		return fmt.Errorf("pod sandbox: %w", err)
	}
	ps := a.podSync(ctx, pod, sb)
	// Volumes first, and on every sync, so updates of the ConfigMaps and
	// Secrets they show reach running containers. A pod that has not
	// started waits for all of its volumes; a running one keeps what it
	// has when a source goes away, as with kubelet.
	if err := a.syncVolumes(ps); err != nil {
		if ctx.Err() != nil {
			return err
		}
		a.event(ctx, pod, corev1.EventTypeWarning, "FailedMount", err.Error())
		if len(ctrs) == 0 {
			return a.updateStatus(ps, nil)
		}
	}
	byName := attempts(ctrs)
	if a.syncInit(ps, byName) {
		for i := range pod.Spec.Containers {
			spec := &pod.Spec.Containers[i]
			if err := a.syncContainer(ps, spec, byName[spec.Name], pod.Spec.RestartPolicy); err != nil {
				a.log.Warn("sync container", "pod", pod.Namespace+"/"+pod.Name, "container", spec.Name, "err", err)
			}
		}
	}
	// Re-list so the status reflects what was just started.
	ctrs, err = a.cfg.Runtime.List(ctx, map[string]string{rt.LabelPodUID: string(pod.UID)})
	if err != nil {
		return err
	}
	byName = attempts(ctrs)
	a.probe(ps, byName)
	return a.updateStatus(ps, byName)
}

// syncInit runs the init containers one after the other, each to
// successful completion, and reports whether all have completed (the app
// containers may start). A failed one is retried with backoff, unless the
// pod's restartPolicy is Never: then the pod fails.
func (a *Agent) syncInit(ps *podSync, byName map[string][]rt.Container) bool {
	// An init container is retried after a failure even under
	// restartPolicy Always, but never after it succeeded.
	policy := corev1.RestartPolicyOnFailure
	if ps.pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
		policy = corev1.RestartPolicyNever
	}
	for i := range ps.pod.Spec.InitContainers {
		spec := &ps.pod.Spec.InitContainers[i]
		tries := byName[spec.Name]
		if n := len(tries); n > 0 && tries[n-1].State == rt.StateExited && tries[n-1].ExitCode == 0 {
			continue
		}
		if err := a.syncContainer(ps, spec, tries, policy); err != nil {
			a.log.Warn("sync init container", "pod", ps.pod.Namespace+"/"+ps.pod.Name, "container", spec.Name, "err", err)
		}
		return false
	}
	return true
}
