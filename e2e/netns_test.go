package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mycelfabric/mycel/workloadplane/runtime/podman"
)

// hostNet gives each node a host of its own on the network: a network
// namespace with one address, on a bridge of the test's own. iptables
// inside a node's namespace then acts on everything that node receives,
// by the sender's real address. (On loopback this does not work: an
// unbound outgoing connection, such as a NATS route, comes from 127.0.0.1
// whichever node made it.)
type hostNet struct {
	t      testing.TB
	id     string // names the bridge, namespaces and veths
	prefix string // 10.211.X.
	hosts  int
	nsOf   map[*node]string
}

// newHostNet creates the bridge and removes it, with every namespace it
// made, when the test ends (after the nodes: cleanups run last first).
func newHostNet(t testing.TB) *hostNet {
	t.Helper()
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Fatal("iptables is not installed (run `make setup`)")
	}
	// Podman's API service runs on the host, not in a node's namespace
	// (Podman there loses its cgroup mounts); nodes reach its socket.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := podman.EnsureService(ctx, podman.DefaultSocket); err != nil {
		t.Fatal(err)
	}
	suffix := randomSuffix()
	f := &hostNet{t: t, id: suffix[:4], prefix: fmt.Sprintf("10.211.%d.", 1+int(suffix[4])%200), nsOf: map[*node]string{}}
	f.ip("link", "add", f.bridge(), "type", "bridge")
	t.Cleanup(func() {
		for i := 1; i <= f.hosts; i++ {
			exec.Command("ip", "netns", "del", f.ns(i)).Run()
		}
		exec.Command("ip", "link", "del", f.bridge()).Run()
	})
	f.ip("addr", "add", f.prefix+"1/24", "dev", f.bridge())
	f.ip("link", "set", f.bridge(), "up")
	return f
}

func (f *hostNet) bridge() string  { return "mbr" + f.id }
func (f *hostNet) ns(i int) string { return fmt.Sprintf("mycel-%s-%d", f.id, i) }

func (f *hostNet) ip(args ...string) {
	f.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		f.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// host adds a namespace and returns the option that starts a node in it,
// its API on the namespace's address.
func (f *hostNet) host() func(*node) {
	f.t.Helper()
	f.hosts++
	i, ns := f.hosts, f.ns(f.hosts)
	veth := fmt.Sprintf("mv%s%d", f.id, i)
	addr := fmt.Sprintf("%s%d", f.prefix, 10+i)
	f.ip("netns", "add", ns)
	f.ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
	f.ip("link", "set", veth, "master", f.bridge(), "up")
	f.ip("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	f.ip("-n", ns, "link", "set", "eth0", "up")
	f.ip("-n", ns, "link", "set", "lo", "up")
	return func(n *node) {
		n.netns, n.apiAddr = ns, addr+":6443"
		f.nsOf[n] = ns
	}
}

// addr is a node's address.
func (n *node) addr() string { return n.apiAddr[:strings.LastIndex(n.apiAddr, ":")] }

// iptables runs iptables in n's namespace.
func (f *hostNet) iptables(n *node, args ...string) {
	f.t.Helper()
	ns := f.nsOf[n]
	if ns == "" {
		f.t.Fatalf("%s has no namespace of this network", n.name)
	}
	if out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "iptables"}, args...)...).CombinedOutput(); err != nil {
		f.t.Fatalf("iptables %s in %s: %v\n%s", strings.Join(args, " "), ns, err, out)
	}
}

// partition drops everything between the two sides, both ways: new
// connections time out and established ones go silent.
func (f *hostNet) partition(left, right []*node) {
	f.t.Helper()
	for _, l := range left {
		for _, r := range right {
			f.iptables(l, "-A", "INPUT", "-s", r.addr(), "-j", "DROP")
			f.iptables(r, "-A", "INPUT", "-s", l.addr(), "-j", "DROP")
		}
	}
}

// loss drops a share p (0..1) of everything n receives from other hosts.
func (f *hostNet) loss(n *node, p float64) {
	f.t.Helper()
	f.iptables(n, "-A", "INPUT", "-i", "eth0", "-m", "statistic", "--mode", "random", "--probability", fmt.Sprint(p), "-j", "DROP")
}

// dropped counts the packets n's rules have dropped so far.
func (f *hostNet) dropped(n *node) int {
	f.t.Helper()
	out, err := exec.Command("ip", "netns", "exec", f.nsOf[n], "iptables", "-L", "INPUT", "-v", "-x", "-n").CombinedOutput()
	if err != nil {
		f.t.Fatalf("iptables -L in %s: %v\n%s", f.nsOf[n], err, out)
	}
	total := 0
	for _, line := range strings.Split(string(out), "\n") {
		if fields := strings.Fields(line); len(fields) > 2 && fields[2] == "DROP" {
			pkts, _ := strconv.Atoi(fields[0])
			total += pkts
		}
	}
	return total
}

// received counts the packets the nodes' hosts received from the network
// so far.
func (f *hostNet) received(nodes []*node) int {
	f.t.Helper()
	total := 0
	for _, n := range nodes {
		out, err := exec.Command("ip", "netns", "exec", f.nsOf[n], "cat", "/sys/class/net/eth0/statistics/rx_packets").CombinedOutput()
		if err != nil {
			f.t.Fatalf("rx_packets in %s: %v\n%s", f.nsOf[n], err, out)
		}
		pkts, err := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil {
			f.t.Fatal(err)
		}
		total += pkts
	}
	return total
}

// heal removes every rule partition and loss added.
func (f *hostNet) heal() {
	f.t.Helper()
	for n := range f.nsOf {
		f.iptables(n, "-F", "INPUT")
	}
}
