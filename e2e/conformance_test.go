package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
	"github.com/mycelfabric/mycel/workloadplane/runtime/podman"
	"github.com/mycelfabric/mycel/workloadplane/runtime/runtimetest"
)

// TestPodmanConformance runs the Runtime conformance suite against real
// Podman, the suite the fake and sim runtimes pass in unit tests.
func TestPodmanConformance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := podman.EnsureService(ctx, podman.DefaultSocket); err != nil {
		t.Fatal(err)
	}
	runtimetest.Conformance(t, runtimetest.Suite{
		New:          func(*testing.T) rt.Runtime { return podman.New(podman.DefaultSocket) },
		Image:        demoImage,
		Args:         []string{"-addr", ":0"},
		MissingImage: "localhost/mycel-missing:0.0",
		ExitArgs:     func(code int) []string { return []string{"-exit-after", "200ms", "-exit-code", fmt.Sprint(code)} },
		LogLine:      "mycel-demo starting",
		ExecCommand:  []string{"/mycel-demo", "exit", "3", "from", "exec"},
		ExecOutput:   "from exec\n",
	})
}
