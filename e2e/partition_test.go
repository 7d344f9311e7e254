package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// onHosts starts count nodes, each on a host of its own (hostNet): the
// first holds the CA, the others join it with tokens. It returns once every
// node lists all of them Ready.
func onHosts(t testing.TB, count int) (*hostNet, []*node) {
	t.Helper()
	net := newHostNet(t)
	first := startNode(t, net.host())
	nodes := []*node{first}
	for range count - 1 {
		nodes = append(nodes, joinNode(t, first, net.host()))
	}
	waitReady(t, nodes, nodes)
	return net, nodes
}

func names(nodes []*node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, "node/"+n.name)
	}
	return out
}

// waitReady waits until every one of on lists every one of of with the
// Ready condition status (True by default).
func waitReady(t testing.TB, on, of []*node, status ...string) {
	t.Helper()
	cond := "condition=Ready"
	if len(status) > 0 {
		cond += "=" + status[0]
	}
	for _, n := range on {
		// kubectl wait fails at once on an object not yet replicated here.
		eventually(t, 90*time.Second, func() error {
			_, err := n.kubectlErr(append([]string{"wait", "--for=" + cond, "--timeout=30s"}, names(of)...)...)
			return err
		})
	}
}

// waitWhole waits until every one of nodes holds all the others Alive in
// its membership (GET /api/cluster/status), so that what a test does next
// does not meet a member still being met.
func waitWhole(t testing.TB, nodes []*node) {
	t.Helper()
	for _, n := range nodes {
		eventually(t, 90*time.Second, func() error {
			out, err := n.kubectlErr("get", "--raw", "/api/cluster/status")
			if err != nil {
				return err
			}
			var st struct {
				Peers []struct{ Name, State string }
			}
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				return err
			}
			alive := map[string]bool{}
			for _, p := range st.Peers {
				alive[p.Name] = p.State == "Alive"
			}
			for _, o := range nodes {
				if o != n && !alive[o.name] {
					return fmt.Errorf("%s does not hold %s alive: %s", n.name, o.name, out)
				}
			}
			return nil
		})
	}
}

// namespaces lists the namespaces n holds whose names start with prefix.
func namespaces(n *node, prefix string) ([]string, error) {
	out, err := n.kubectlErr("get", "namespaces", "-o", "name")
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	var got []string
	for _, l := range strings.Fields(out) {
		if name := strings.TrimPrefix(l, "namespace/"); strings.HasPrefix(name, prefix) {
			got = append(got, name)
		}
	}
	sort.Strings(got)
	return got, nil
}

// waitNamespaces waits until every node holds exactly want (sorted) among
// the namespaces named with prefix.
func waitNamespaces(t testing.TB, nodes []*node, prefix string, want []string) {
	t.Helper()
	for _, n := range nodes {
		eventually(t, 90*time.Second, func() error {
			got, err := namespaces(n, prefix)
			if err != nil {
				return err
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				return fmt.Errorf("%s holds %v, want %v", n.name, got, want)
			}
			return nil
		})
	}
}

// TestPartitionHealAndKill: five nodes on hosts of their own are split 2 | 3
// by iptables. Each side declares the other's nodes NotReady and keeps
// accepting writes, including conflicting writes to one object, and a
// delete on one side of an object the other side goes on writing. Once the
// partition heals, every node holds every acknowledged write, agrees on the
// conflicting object, holds the deleted object deleted, and lists all five
// Ready. Then the node every other
// joined through is killed with SIGKILL right after it acknowledged a
// write; the others accept writes while it is down; restarted, it catches
// up, and its last write reaches every node.
func TestPartitionHealAndKill(t *testing.T) {
	net, nodes := onHosts(t, 5)
	left, right := nodes[:2], nodes[2:]
	left[0].kubectl("create", "deployment", "doomed", "--image="+demoImage, "--replicas=0")
	for _, n := range nodes {
		eventually(t, 30*time.Second, func() error {
			_, err := n.kubectlErr("get", "deployment", "doomed")
			return err
		})
	}

	net.partition(left, right)
	waitReady(t, left, right, "Unknown")
	waitReady(t, right, left, "Unknown")
	left[1].kubectl("delete", "deployment", "doomed")
	// The other side, unaware, writes its spec and its status afterwards.
	right[0].kubectl("annotate", "deployment", "doomed", "after=delete")
	right[1].kubectl("patch", "deployment", "doomed", "--subresource=status", "--type=merge", "-p", `{"status":{"observedGeneration":7}}`)
	var want []string
	for i := range 6 {
		for side, ns := range map[string][]*node{"left": left, "right": right} {
			name := fmt.Sprintf("p-%s-%d", side, i)
			ns[i%len(ns)].kubectl("create", "namespace", name)
			want = append(want, name)
		}
	}
	sort.Strings(want)
	left[0].kubectl("label", "namespace", "default", "side=left", "--overwrite")
	right[0].kubectl("label", "namespace", "default", "side=right", "--overwrite")
	if got, _ := namespaces(left[1], "p-right"); len(got) != 0 {
		t.Fatalf("the right side's writes crossed the partition: %v", got)
	}

	net.heal()
	waitNamespaces(t, nodes, "p-", want)
	waitReady(t, nodes, nodes)
	eventually(t, 60*time.Second, func() error {
		sides := map[string]bool{}
		for _, n := range nodes {
			side, err := n.kubectlErr("get", "namespace", "default", "-o", "jsonpath={.metadata.labels.side}")
			if err != nil {
				return err
			}
			sides[side] = true
		}
		if len(sides) != 1 || sides[""] {
			return fmt.Errorf("nodes disagree on the label written on both sides: %v", sides)
		}
		return nil
	})
	for _, n := range nodes {
		eventually(t, 30*time.Second, func() error {
			if out, err := n.kubectlErr("get", "deployment", "doomed", "-o", "name"); err == nil {
				return fmt.Errorf("%s: the deployment deleted during the partition is back: %s", n.name, out)
			}
			return nil
		})
	}

	first := nodes[0]
	first.kubectl("create", "namespace", "k-before-kill")
	first.kill9()
	waitReady(t, nodes[1:], nodes[:1], "Unknown")
	nodes[1].kubectl("create", "namespace", "k-while-down")
	first.start()
	waitNamespaces(t, nodes, "k-", []string{"k-before-kill", "k-while-down"})
	waitReady(t, nodes, nodes)
}
