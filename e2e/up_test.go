package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpRunsEachNodeAsItsOwnProcess: `mycel up --nodes 3 --demo` runs three
// `mycel node` processes; kill -9 of one node's PID leaves the other two
// serving (and marking it NotReady); Ctrl-C stops the rest and removes the
// fabric's containers.
func TestUpRunsEachNodeAsItsOwnProcess(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Nodes 2 and 3 listen on 127.0.0.2 and .3 at node-1's port, a random
	// one: a developer's `mycel up` on 6443 is left alone.
	up := exec.CommandContext(ctx, mycelBin, "up", "--dir", dir, "--nodes", "3", "--demo", "--quiet", "--api-addr", addr)
	out, err := up.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	up.Stderr = &stderr
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var upErr error
	go func() {
		upErr = up.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		up.Process.Signal(os.Interrupt)
		<-exited
		if t.Failed() {
			t.Logf("mycel up stderr:\n%s", stderr.String())
			for i := 1; i <= 3; i++ {
				b, _ := os.ReadFile(filepath.Join(dir, "nodes", fmt.Sprintf("node-%d", i), "node.log"))
				t.Logf("node-%d log:\n%s", i, b)
			}
		}
	})
	lines := bufio.NewScanner(out)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "ready: export KUBECONFIG=") {
		t.Fatalf("mycel up printed %q, want ready", lines.Text())
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	n1 := &node{t: t, kubeconfig: kubeconfig}
	pids := map[int]string{}
	peers := map[string]string{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("node-%d", i)
		b, err := os.ReadFile(filepath.Join(dir, "nodes", name, "mycel.pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if other, dup := pids[pid]; dup || pid == up.Process.Pid {
			t.Fatalf("%s has PID %d, as %q (or mycel up) has", name, pid, other)
		}
		pids[pid] = name
		addrs, _ := os.ReadFile(filepath.Join(dir, "nodes", name, "p2p.addrs"))
		first := strings.Fields(string(addrs))[0]
		peers[name] = first[strings.LastIndex(first, "/")+1:]
	}
	n1.kubectl("rollout", "status", "deployment/demo", "--timeout=120s")

	var victim int
	for pid, name := range pids {
		if name == "node-2" {
			victim = pid
		}
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, ctxName := range []string{"node-1", "node-3"} {
		n := &node{t: t, kubeconfig: kubeconfig}
		n.kubectl("--context", ctxName, "wait", "--for=condition=Ready=Unknown", "node/node-2", "--timeout=60s")
		n.kubectl("--context", ctxName, "wait", "--for=condition=Ready", "node/node-1", "node/node-3", "--timeout=10s")
	}
	select {
	case <-exited:
		t.Fatalf("mycel up ended when one node died: %v", upErr)
	default:
	}

	up.Process.Signal(os.Interrupt)
	select {
	case <-exited:
		if upErr != nil {
			t.Fatalf("mycel up on Ctrl-C: %v", upErr)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("mycel up did not stop within 2 minutes of Ctrl-C")
	}
	// The killed node's containers go too: they are the fabric's.
	for name, peer := range peers {
		ps, err := exec.Command("podman", "ps", "-aq", "--filter", "label=mycel.io/peer-id="+peer).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(ps)); got != "" {
			t.Errorf("containers of %s left after Ctrl-C: %s", name, got)
		}
	}
}
