package podman

import (
	"context"
	"time"

	"github.com/containers/podman/v5/pkg/bindings/containers"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// Stats implements rt.StatsReader with one non-streaming sample of every
// running container (`podman stats --no-stream`).
func (p *Podman) Stats(ctx context.Context) (map[string]rt.Stats, error) {
	c, err := p.ctx(ctx)
	if err != nil {
		return nil, err
	}
	reports, err := containers.Stats(c, nil, new(containers.StatsOptions).WithStream(false))
	if err != nil {
		return nil, wrap("stats", err)
	}
	out := map[string]rt.Stats{}
	for report := range reports {
		if report.Error != nil {
			return nil, wrap("stats", report.Error)
		}
		for _, s := range report.Stats {
			if s.SystemNano == 0 {
				continue // not running: Podman lists it with no sample
			}
			out[s.ContainerID] = rt.Stats{CPU: time.Duration(s.CPUNano), Memory: s.MemUsage}
		}
	}
	return out, nil
}
