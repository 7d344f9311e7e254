package podman

import (
	"context"
	"errors"

	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/pods"
	entitiesTypes "github.com/containers/podman/v5/pkg/domain/entities/types"
	"github.com/containers/podman/v5/pkg/specgen"
	nettypes "go.podman.io/common/libnetwork/types"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// Sandboxes are Podman pods: an infra container holds the network, IPC and
// UTS namespaces every container of the pod joins.
var _ rt.Sandboxes = (*Podman)(nil)

// CreateSandbox implements rt.Sandboxes.
func (p *Podman) CreateSandbox(ctx context.Context, spec rt.SandboxSpec) (rt.Sandbox, error) {
	c, err := p.ctx(ctx)
	if err != nil {
		return rt.Sandbox{}, err
	}
	gen := specgen.NewPodSpecGenerator()
	gen.Name, gen.Hostname, gen.Labels = spec.Name, spec.Hostname, spec.Labels
	gen.NetNS = specgen.Namespace{NSMode: specgen.Bridge}
	for _, port := range spec.Ports {
		gen.PortMappings = append(gen.PortMappings, nettypes.PortMapping{
			HostIP: port.HostIP, HostPort: uint16(port.HostPort), ContainerPort: uint16(port.ContainerPort), Protocol: port.Protocol,
		})
	}
	resp, err := pods.CreatePodFromSpec(c, &entitiesTypes.PodSpec{PodSpecGen: *gen})
	if err != nil {
		return rt.Sandbox{}, wrap("create pod "+spec.Name, err)
	}
	if _, err := pods.Start(c, resp.Id, nil); err != nil {
		p.RemoveSandbox(ctx, resp.Id)
		return rt.Sandbox{}, wrap("start pod "+spec.Name, err)
	}
	sbs, err := p.listSandboxes(c, map[string][]string{"id": {resp.Id}})
	if err != nil {
		return rt.Sandbox{}, err
	}
	if len(sbs) != 1 {
		return rt.Sandbox{}, errors.New("podman: a created pod is not listed")
	}
	return sbs[0], nil
}

// ListSandboxes implements rt.Sandboxes.
func (p *Podman) ListSandboxes(ctx context.Context, labels map[string]string) ([]rt.Sandbox, error) {
	c, err := p.ctx(ctx)
	if err != nil {
		return nil, err
	}
	return p.listSandboxes(c, labelFilters(labels))
}

func (p *Podman) listSandboxes(c context.Context, filters map[string][]string) ([]rt.Sandbox, error) {
	list, err := pods.List(c, new(pods.ListOptions).WithFilters(filters))
	if err != nil {
		return nil, wrap("list pods", err)
	}
	out := make([]rt.Sandbox, 0, len(list))
	for _, lp := range list {
		sb := rt.Sandbox{ID: lp.Id, Name: lp.Name, Labels: lp.Labels}
		for _, ctr := range lp.Containers {
			if ctr.Id == lp.InfraId {
				sb.Running = ctr.Status == "running"
			}
		}
		if sb.Running {
			if in, err := p.inspect(c, lp.InfraId, "running"); err == nil {
				sb.IP = in.ip
			}
		}
		out = append(out, sb)
	}
	return out, nil
}

// RemoveSandbox implements rt.Sandboxes.
func (p *Podman) RemoveSandbox(ctx context.Context, id string) error {
	c, err := p.ctx(ctx)
	if err != nil {
		return err
	}
	// The pod's containers first, so the cache forgets them.
	if ctrs, err := containers.List(c, new(containers.ListOptions).WithAll(true).WithFilters(map[string][]string{"pod": {id}})); err == nil {
		for _, ctr := range ctrs {
			p.cacheMu.Lock()
			delete(p.cache, ctr.ID)
			p.cacheMu.Unlock()
		}
	}
	_, err = pods.Remove(c, id, new(pods.RemoveOptions).WithForce(true))
	if err = wrap("remove pod", err); errors.Is(err, rt.ErrNotFound) {
		return nil
	}
	return err
}
