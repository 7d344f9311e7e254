package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const demoImage = "localhost/mycel-demo:0.1"

var mycelBin string

func TestMain(m *testing.M) {
	if os.Getenv("MYCEL_E2E") != "1" {
		fmt.Println("e2e: skipped (set MYCEL_E2E=1; `make test` does)")
		os.Exit(0)
	}
	bin, err := filepath.Abs("../bin/mycel")
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: bin/mycel missing: run `make build image` first:", err)
		os.Exit(1)
	}
	for _, tool := range []string{"kubectl", "podman"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %s is not installed (run `make setup`)\n", tool)
			os.Exit(1)
		}
	}
	mycelBin = bin
	os.Exit(m.Run())
}

// node is one real `mycel node` process with its own CA, data dir and
// kubeconfig.
type node struct {
	t          testing.TB
	name       string
	dir        string
	caDir      string
	dataDir    string
	apiAddr    string
	kubeconfig string
	policyDir  string
	socket     string
	join       string // token; the node joins instead of holding the CA
	netns      string // the network namespace the node runs in, if any
	bootstrap  string
	labels     string   // extra node labels, k=v,...
	args       []string // extra `mycel node` flags
	cmd        *exec.Cmd
	startedAt  time.Time // when the process was last started
	exited     chan struct{}
	log        *bytes.Buffer
}

func randomSuffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// freeAddr returns a loopback address no one listens on, on its own
// 127.0.0.x so tests and a developer's `mycel up` do not collide.
func freeAddr(t testing.TB) string {
	t.Helper()
	b := make([]byte, 2)
	rand.Read(b)
	return fmt.Sprintf("127.0.%d.%d:%d", 1+int(b[0])%200, 2+int(b[1])%200, 20000+int(b[0])<<4+int(b[1])%16)
}

// startNode creates a trust domain and starts a node; the node and its
// containers are removed when the test ends.
func startNode(t testing.TB, opts ...func(*node)) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{t: t, name: "e2e-" + randomSuffix(), dir: dir, caDir: filepath.Join(dir, "ca"), dataDir: filepath.Join(dir, "node"), apiAddr: freeAddr(t)}
	for _, o := range opts {
		o(n)
	}
	run(t, mycelBin, "ca", "init", "--trust-domain", "e2e.test", "--dir", n.caDir)
	n.kubeconfig = filepath.Join(dir, "kubeconfig")
	run(t, mycelBin, "kubeconfig", "--dir", n.caDir, "--user", "tester", "--group", "mycel:admins", "--server", "https://"+n.apiAddr, "--out", n.kubeconfig)
	n.start()
	t.Cleanup(func() {
		n.stop()
		n.removeContainers()
		if t.Failed() {
			t.Logf("node log:\n%s", n.log.String())
		}
	})
	return n
}

// joinNode starts a node that joins first's trust domain with a token,
// bootstrapping from first, on its own loopback address. Its kubeconfig
// points at its own API.
func joinNode(t testing.TB, first *node, opts ...func(*node)) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{t: t, name: "e2e-" + randomSuffix(), dir: dir, caDir: first.caDir, dataDir: filepath.Join(dir, "node"), apiAddr: freeAddr(t)}
	for _, o := range opts {
		o(n)
	}
	n.join = strings.TrimSpace(run(t, mycelBin, "token", "create", "--ca-dir", first.caDir))
	addrs, err := os.ReadFile(filepath.Join(first.dataDir, "p2p.addrs"))
	if err != nil {
		t.Fatal(err)
	}
	n.bootstrap = strings.Fields(string(addrs))[0]
	n.kubeconfig = filepath.Join(dir, "kubeconfig")
	run(t, mycelBin, "kubeconfig", "--dir", first.caDir, "--user", "tester", "--group", "mycel:admins", "--server", "https://"+n.apiAddr, "--out", n.kubeconfig)
	n.start()
	t.Cleanup(func() {
		n.stop()
		n.removeContainers()
		if t.Failed() {
			t.Logf("log of %s:\n%s", n.name, n.log.String())
		}
	})
	return n
}

func (n *node) start() {
	n.t.Helper()
	labels := "e2e=true"
	if n.labels != "" {
		labels += "," + n.labels
	}
	args := append([]string{"node", "--name", n.name, "--data-dir", n.dataDir, "--api-addr", n.apiAddr, "--labels", labels}, n.args...)
	if n.join != "" {
		args = append(args, "--join", n.join, "--bootstrap", n.bootstrap)
	} else {
		args = append(args, "--ca-dir", n.caDir)
	}
	if n.policyDir != "" {
		args = append(args, "--policy-dir", n.policyDir)
	}
	if n.socket != "" {
		args = append(args, "--podman-socket", n.socket)
	}
	if os.Getenv("MYCEL_E2E_PPROF") == "1" {
		// For profiling a test or benchmark: each node's profiles at
		// http://<its API host>:6060/debug/pprof/.
		h, _, _ := net.SplitHostPort(n.apiAddr)
		args = append(args, "--pprof-addr", net.JoinHostPort(h, "6060"))
	}
	n.log = &bytes.Buffer{}
	if n.netns != "" {
		n.cmd = exec.Command("ip", append([]string{"netns", "exec", n.netns, mycelBin}, args...)...)
	} else {
		n.cmd = exec.Command(mycelBin, args...)
	}
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	n.startedAt = time.Now()
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.exited = make(chan struct{})
	go func() {
		n.cmd.Wait()
		close(n.exited)
	}()
	// Ready once the node's own Node object says so.
	eventually(n.t, 60*time.Second, func() error {
		select {
		case <-n.exited:
			n.t.Fatalf("mycel node exited:\n%s", n.log.String())
		default:
		}
		_, err := n.kubectlErr("wait", "--for=condition=Ready", "node/"+n.name, "--timeout=5s")
		return err
	})
}

// kill9 kills the node without letting it clean up.
func (n *node) kill9() {
	n.cmd.Process.Signal(os.Kill)
	<-n.exited
}

func (n *node) stop() {
	select {
	case <-n.exited:
		return
	default:
	}
	n.cmd.Process.Signal(os.Interrupt)
	select {
	case <-n.exited:
	case <-time.After(20 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
}

// kubectl runs kubectl against the node and fails the test on error.
func (n *node) kubectl(args ...string) string {
	n.t.Helper()
	out, err := n.kubectlErr(args...)
	if err != nil {
		n.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (n *node) kubectlErr(args ...string) (string, error) {
	return n.kubectlIn("", args...)
}

// kubectlIn runs kubectl with stdin.
func (n *node) kubectlIn(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", n.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// container is a row of `podman ps`.
type container struct {
	ID      string            `json:"Id"`
	Names   []string          `json:"Names"`
	State   string            `json:"State"`
	Labels  map[string]string `json:"Labels"`
	IsInfra bool              `json:"IsInfra"`
}

// containers lists the node's containers, optionally only those in state.
func (n *node) containers(state string) []container {
	n.t.Helper()
	args := []string{"ps", "-a", "--format", "json", "--filter", "label=mycel.io/node=" + n.name}
	if state != "" {
		args = append(args, "--filter", "status="+state)
	}
	out, err := exec.Command("podman", args...).Output()
	if err != nil {
		n.t.Fatalf("podman ps: %v", err)
	}
	var all []container
	if err := json.Unmarshal(out, &all); err != nil {
		n.t.Fatalf("podman ps output: %v\n%s", err, out)
	}
	var cs []container
	for _, c := range all {
		if !c.IsInfra { // a pod sandbox's, carrying its pod's labels
			cs = append(cs, c)
		}
	}
	return cs
}

// removeContainers removes the node's pod sandboxes and containers.
func (n *node) removeContainers() {
	pods, _ := exec.Command("podman", "pod", "ps", "-q", "--filter", "label=mycel.io/node="+n.name).Output()
	for _, id := range strings.Fields(string(pods)) {
		exec.Command("podman", "pod", "rm", "-f", id).Run()
	}
	for _, c := range n.containers("") {
		exec.Command("podman", "rm", "-f", c.ID).Run()
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// eventually retries f until it succeeds or the timeout passes. It is for
// states no event announces (podman ps); everything kubectl can wait for is
// awaited with kubectl wait or rollout status instead.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reached within %s: %v", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
