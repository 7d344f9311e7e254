package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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

// TestPodmanServiceStartsInRoot: the Podman service Mycel starts outlives
// the process that started it, so it runs in "/", never in a directory
// that may be removed under it (its conmons then fail to start any
// container with "write child: broken pipe").
func TestPodmanServiceStartsInRoot(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "podman.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := podman.EnsureService(ctx, sock); err != nil {
		t.Fatal(err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(cmdline), "unix://"+sock) {
			continue
		}
		dir := filepath.Dir(p)
		t.Cleanup(func() {
			pid, _ := strconv.Atoi(filepath.Base(dir))
			syscall.Kill(pid, syscall.SIGTERM)
		})
		if cwd, err := os.Readlink(filepath.Join(dir, "cwd")); err != nil || cwd != "/" {
			t.Fatalf("the Podman service runs in %q (%v), want /", cwd, err)
		}
		return
	}
	t.Fatal("no Podman service process found for the socket")
}
