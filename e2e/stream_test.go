package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStreams: kubectl exec, attach, cp and port-forward through one node's
// API reach a pod in a real Podman container on another node: output and
// exit codes, stdin, a file copied in and out, the pod's HTTP page on a
// local port, the container's output live; a closed port reports why, a
// missing container is refused with kubectl's message, and the command of a dropped exec
// does not stay running.
func TestStreams(t *testing.T) {
	a := startNode(t)
	b := joinNode(t, a)
	a.kubectlIn(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  nodeName: %s
  containers:
  - name: web
    image: %s
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
`, b.name, demoImage), "apply", "-f", "-")
	a.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=90s")

	// exec through node a into the pod on node b: output, exit code, stdin.
	if out := a.kubectl("exec", "web", "--", "/mycel-demo", "cat", "/etc/hostname"); strings.TrimSpace(out) != "web" {
		t.Fatalf("kubectl exec cat /etc/hostname: %q", out)
	}
	out, err := a.kubectlErr("exec", "web", "--", "/mycel-demo", "exit", "3")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("kubectl exec of a command exiting 3: %v\n%s", err, out)
	}
	if out, err := a.kubectlIn("sent through stdin", "exec", "-i", "web", "--", "/mycel-demo", "cat", "/dev/stdin"); err != nil || out != "sent through stdin" {
		t.Fatalf("kubectl exec -i: %v\n%q", err, out)
	}
	if out, err := a.kubectlErr("exec", "web", "-c", "nope", "--", "/mycel-demo", "true"); err == nil || !strings.Contains(out, "container nope is not valid for pod web") {
		t.Fatalf("kubectl exec into a missing container: %v\n%s", err, out)
	}

	// kubectl cp both ways (it runs tar in the container).
	dir := t.TempDir()
	src := filepath.Join(dir, "in.txt")
	os.WriteFile(src, []byte("a file copied into a pod\n"), 0o644)
	a.kubectl("cp", src, "web:/data/copied.txt")
	if out := a.kubectl("exec", "web", "--", "/mycel-demo", "cat", "/data/copied.txt"); out != "a file copied into a pod\n" {
		t.Fatalf("file copied in: %q", out)
	}
	back := filepath.Join(dir, "back.txt")
	a.kubectl("cp", "web:/data/copied.txt", back)
	if got, _ := os.ReadFile(back); string(got) != "a file copied into a pod\n" {
		t.Fatalf("file copied out: %q", got)
	}

	// port-forward: the pod's page on a local port; a port nothing listens
	// on fails on its own.
	page, closed := freePort(t), freePort(t)
	pf := a.background(t, "port-forward", "pod/web", page+":8080", closed+":9")
	pf.waitFor(t, "Forwarding from 127.0.0.1:"+closed)
	if body := httpGet(t, "http://127.0.0.1:"+page+"/"); !strings.HasPrefix(body, "web: ") {
		t.Fatalf("page through port-forward: %q", body)
	}

	// attach sees the container's output as it is written: the request
	// just made through the port-forward is logged by the server.
	// kubectl says nothing once attached, so requests repeat until one is
	// seen.
	at := a.background(t, "attach", "web")
	for i := 0; !at.sees("GET /attached", time.Second); i++ {
		if i == 30 {
			t.Fatalf("kubectl attach did not show the server's log of a request:\n%s", strings.Join(at.seen, "\n"))
		}
		httpGet(t, "http://127.0.0.1:"+page+"/attached")
	}

	// A port nothing listens on fails with the pod's reason on that
	// port's error stream (kubectl then ends the whole session; the
	// agent's TestPortForwardStreams shows the other ports stay up).
	if _, err := http.Get("http://127.0.0.1:" + closed + "/"); err == nil {
		t.Fatalf("a request through a port-forward to a closed port succeeded")
	}
	pf.waitFor(t, "port 9: dial tcp4 127.0.0.1:9: connect: connection refused")

	// A dropped exec: kubectl killed mid-command leaves no process behind.
	sleeper := a.background(t, "exec", "web", "--", "/mycel-demo", "sleep", "600")
	ctr := b.containers("running")[0].ID
	eventually(t, 30*time.Second, func() error {
		if !strings.Contains(run(t, "podman", "top", ctr, "args"), "sleep 600") {
			return fmt.Errorf("the exec'd sleep is not running yet")
		}
		return nil
	})
	sleeper.cmd.Process.Kill()
	eventually(t, 30*time.Second, func() error {
		if out := run(t, "podman", "top", ctr, "args"); strings.Contains(out, "sleep 600") {
			return fmt.Errorf("the command of a dropped exec still runs:\n%s", out)
		}
		return nil
	})
}

// bg is a kubectl running in the background, its output collected.
type bg struct {
	cmd   *exec.Cmd
	lines chan string
	seen  []string
}

// background starts kubectl; the test's end kills it.
func (n *node) background(t testing.TB, args ...string) *bg {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", n.kubeconfig}, args...)...)
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &bg{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			b.lines <- sc.Text()
		}
		close(b.lines)
	}()
	go func() { cmd.Wait(); w.Close() }()
	t.Cleanup(cancel)
	return b
}

// waitFor reads output until a line containing s, for up to a minute.
func (b *bg) waitFor(t testing.TB, s string) {
	t.Helper()
	if !b.sees(s, time.Minute) {
		t.Fatalf("kubectl %v did not print %q:\n%s", b.cmd.Args[3:], s, strings.Join(b.seen, "\n"))
	}
}

// sees reports whether a line containing s comes within d (false also if
// kubectl ends first).
func (b *bg) sees(s string, d time.Duration) bool {
	timeout := time.After(d)
	for {
		select {
		case line, ok := <-b.lines:
			if !ok {
				return false
			}
			b.seen = append(b.seen, line)
			if strings.Contains(line, s) {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

func freePort(t testing.TB) string {
	_, port, _ := net.SplitHostPort(freeAddr(t))
	return port
}

func httpGet(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}
