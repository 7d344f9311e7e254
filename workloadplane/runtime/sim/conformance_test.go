package sim

import (
	"testing"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
	"github.com/mycelfabric/mycel/workloadplane/runtime/runtimetest"
)

func TestSimConformance(t *testing.T) {
	runtimetest.Conformance(t, runtimetest.Suite{
		New:     func(*testing.T) rt.Runtime { return New(4000, 8<<30) },
		Image:   "any",
		LogLine: "simulated containers produce no output",
	})
}
