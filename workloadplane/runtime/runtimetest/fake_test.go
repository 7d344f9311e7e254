package runtimetest

import (
	"testing"
	"time"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

func TestFakeConformance(t *testing.T) {
	Conformance(t, Suite{
		New:          func(*testing.T) rt.Runtime { return New(time.Now, "img:1") },
		Image:        "img:1",
		MissingImage: "img:missing",
		Exit:         func(r rt.Runtime, id string, code int32) { r.(*Fake).Exit(id, code) },
		LogLine:      "log of conformance-",
	})
}
