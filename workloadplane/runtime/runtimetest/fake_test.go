package runtimetest

import (
	"testing"
	"time"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

func TestFakeConformance(t *testing.T) {
	Conformance(t, Suite{
		New: func(*testing.T) rt.Runtime {
			f := New(time.Now, "img:1")
			f.ExecFunc = func(_ string, cmd []string) (int, string) { return 3, cmd[1] }
			return f
		},
		ExecCommand:  []string{"echo", "out"},
		ExecOutput:   "out",
		Image:        "img:1",
		MissingImage: "img:missing",
		Exit:         func(r rt.Runtime, id string, code int32) { r.(*Fake).Exit(id, code) },
		LogLine:      "log of conformance-",
	})
}
