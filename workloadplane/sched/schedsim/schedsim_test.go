package schedsim

import (
	"context"
	"testing"
)

// TestSimulationPlacesEveryPodWithConstantMessages: with room for all, every
// pod is placed with 2d+2 messages, and a workload smaller than the fabric
// is spread one pod per node.
func TestSimulationPlacesEveryPodWithConstantMessages(t *testing.T) {
	res, err := Run(context.Background(), Config{Nodes: []int{20}, Pods: 40, Replicas: 5, Owners: 4})
	if err != nil {
		t.Fatal(err)
	}
	r := res[0]
	if r.Placed != 40 || r.Unplaced != 0 || r.MessagesPerPlacement != 8 || r.MaxPerNode != 1 {
		t.Fatalf("%+v", r)
	}
}
