package sched

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The protocol scripts in testdata/ drive owners and bidders over an
// in-memory network with a fake clock. Each "run" directive's input is a
// list of commands; its output is what they print. Rewrite them with
// `go test -run TestScripts -rewrite`.
//
//	node NAME cpu=MILLI mem=QUANTITY [pods=N] [zone=Z] [deny=MSG]
//	pod NAME [cpu=MILLI] [mem=QUANTITY]
//	place POD owner=NODE [cands=N1,N2,...]   (default: every node)
//	bind POD NODE | free NODE | advance DURATION
//	cut A B | heal | drop-awards NODE
//	award FROM TO TENDER POD                 (a hand-made award)
//	crash NODE | restart NODE                (the node stops answering)
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		w := newWorld()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "run" {
				d.Fatalf(t, "unknown directive %q (want run)", d.Cmd)
			}
			var got []string
			for _, cmd := range strings.Split(strings.TrimSpace(d.Input), "\n") {
				got = append(got, w.run(t, cmd)...)
			}
			return strings.Join(got, "\n")
		})
	})
}

// world is an in-memory fabric: nodes with bidders, a clock, a network.
type world struct {
	now     time.Time
	nodes   map[string]*simNode
	order   []string
	pods    map[string]*corev1.Pod
	cut     map[[2]string]bool
	drop    map[string]bool
	down    map[string]bool
	placers map[string]*Placer
	mu      sync.Mutex
	log     []string
}

type simNode struct {
	name   string
	zone   string
	alloc  Resources
	deny   string
	bound  map[types.UID]Resources
	bidder *Bidder
}

func newWorld() *world {
	return &world{now: time.Unix(1_800_000_000, 0), nodes: map[string]*simNode{}, pods: map[string]*corev1.Pod{},
		cut: map[[2]string]bool{}, drop: map[string]bool{}, down: map[string]bool{}, placers: map[string]*Placer{}}
}

func (w *world) clock() time.Time { return w.now }

// Place implements Policy for the scripts: a node with deny set refuses;
// the score prefers free CPU and fewer siblings.
func (n *simNode) Place(_ context.Context, in PolicyInput) (Verdict, error) {
	if n.deny != "" {
		return Verdict{Deny: []string{n.deny}}, nil
	}
	return Verdict{Score: float64(in.Node.Free.MilliCPU)/1000 - float64(in.Siblings.Node)}, nil
}

func kv(args []string) map[string]string {
	out := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		out[k] = v
	}
	return out
}

func (w *world) run(t *testing.T, cmd string) []string {
	t.Helper()
	f := fields(cmd)
	args := kv(f[1:])
	switch f[0] {
	case "node":
		n := &simNode{name: f[1], zone: args["zone"], deny: args["deny"], bound: map[types.UID]Resources{}}
		n.alloc = Resources{MilliCPU: atoi(t, args["cpu"]), MemoryBytes: quantity(t, args["mem"]), Pods: 110}
		if args["pods"] != "" {
			n.alloc.Pods = atoi(t, args["pods"])
		}
		b, err := NewBidder(BidderConfig{Policy: n, Now: w.clock, Facts: func() (Facts, error) {
			f := Facts{Node: n.name, Zone: n.zone, Allocatable: n.alloc, Bound: map[types.UID]bool{}}
			for uid, r := range n.bound {
				f.Used, f.Bound[uid] = f.Used.Add(r), true
			}
			return f, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		n.bidder = b
		w.nodes[n.name] = n
		w.order = append(w.order, n.name)
		return nil
	case "pod":
		c := corev1.Container{Name: "c"}
		c.Resources.Requests = corev1.ResourceList{}
		if args["cpu"] != "" {
			c.Resources.Requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(atoi(t, args["cpu"]), resource.DecimalSI)
		}
		if args["mem"] != "" {
			c.Resources.Requests[corev1.ResourceMemory] = resource.MustParse(args["mem"])
		}
		w.pods[f[1]] = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: f[1], UID: types.UID("uid-" + f[1])}, Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
		return nil
	case "place":
		pod := w.pods[f[1]]
		owner := args["owner"]
		p := w.placers[owner]
		if p == nil {
			var err error
			p, err = NewPlacer(PlacerConfig{Self: owner, Requester: "spiffe://test/node/" + owner, Transport: &memTransport{w: w, from: owner}, Now: w.clock})
			if err != nil {
				t.Fatal(err)
			}
			w.placers[owner] = p
		}
		var cands []Candidate
		names := w.order
		if args["cands"] != "" {
			names = strings.Split(args["cands"], ",")
		}
		for _, name := range names {
			cands = append(cands, Candidate{Node: name, Peer: name, Zone: w.nodes[name].zone})
		}
		spread := Spread{Nodes: map[string]int{}}
		for _, n := range w.nodes {
			for uid := range n.bound {
				if strings.HasPrefix(string(uid), "uid-"+strings.SplitN(f[1], "-", 2)[0]) {
					spread.Nodes[n.name]++
				}
			}
		}
		w.log = nil
		out := p.Place(context.Background(), pod, cands, spread)
		lines := w.takeLog()
		reasons := make([]string, 0, len(out.Reasons))
		for r, c := range out.Reasons {
			reasons = append(reasons, fmt.Sprintf("%d %s", c, r))
		}
		sort.Strings(reasons)
		node := out.Node
		if node == "" {
			node = "none"
		}
		return append(lines, fmt.Sprintf("placed %s on %s (asked %d, %d messages) reasons [%s]", f[1], node, out.Asked, out.Messages, strings.Join(reasons, ", ")))
	case "bind":
		w.nodes[f[2]].bound[w.pods[f[1]].UID] = Requests(w.pods[f[1]])
		return nil
	case "free":
		free, _, err := w.nodes[f[1]].bidder.Free()
		if err != nil {
			t.Fatal(err)
		}
		return []string{fmt.Sprintf("%s free: cpu=%dm mem=%s pods=%d", f[1], free.MilliCPU, resource.NewQuantity(free.MemoryBytes, resource.BinarySI), free.Pods)}
	case "advance":
		d, err := time.ParseDuration(f[1])
		if err != nil {
			t.Fatal(err)
		}
		w.now = w.now.Add(d)
		return nil
	case "cut":
		w.cut[[2]string{f[1], f[2]}], w.cut[[2]string{f[2], f[1]}] = true, true
		return nil
	case "heal":
		w.cut, w.drop = map[[2]string]bool{}, map[string]bool{}
		return nil
	case "drop-awards":
		w.drop[f[1]] = true
		return nil
	case "crash":
		w.down[f[1]] = true
		return nil
	case "restart":
		delete(w.down, f[1])
		return nil
	case "award":
		tr := &memTransport{w: w, from: f[1]}
		w.log = nil
		tr.Award(context.Background(), f[2], Award{Tender: f[3], Pod: types.UID("uid-" + f[4]), LeaseUntil: w.now.Add(10 * time.Second).UnixNano()})
		return w.takeLog()
	}
	t.Fatalf("unknown command %q", cmd)
	return nil
}

func (w *world) takeLog() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Tenders go out in parallel; their lines come first, sorted.
	var tenders, rest []string
	for _, l := range w.log {
		if strings.HasPrefix(l, "tender") {
			tenders = append(tenders, l)
		} else {
			rest = append(rest, l)
		}
	}
	sort.Strings(tenders)
	w.log = nil
	return append(tenders, rest...)
}

// memTransport delivers messages synchronously between the world's nodes.
type memTransport struct {
	w    *world
	from string
}

var errUnreachable = errors.New("unreachable")

func (m *memTransport) reach(to string) error {
	if m.w.cut[[2]string{m.from, to}] || m.w.down[to] || m.w.nodes[to] == nil {
		return errUnreachable
	}
	return nil
}

func (m *memTransport) record(format string, args ...any) {
	m.w.mu.Lock()
	defer m.w.mu.Unlock()
	m.w.log = append(m.w.log, fmt.Sprintf(format, args...))
}

func (m *memTransport) Tender(ctx context.Context, peers []string, t Tender) []Answer {
	out := make([]Answer, len(peers))
	for i, to := range peers {
		if err := m.reach(to); err != nil {
			m.record("tender %s -> %s: no answer", m.from, to)
			out[i].Err = err
			continue
		}
		out[i].Reply = m.w.nodes[to].bidder.OnTender(ctx, m.from, t)
		m.record("tender %s -> %s: %s", m.from, to, describe(out[i].Reply))
	}
	return out
}

func (m *memTransport) Award(_ context.Context, to string, a Award) (Reply, error) {
	if err := m.reach(to); err != nil || m.w.drop[to] {
		m.record("award %s -> %s %s: no answer", m.from, to, a.Tender)
		return Reply{}, errUnreachable
	}
	r, err := m.w.nodes[to].bidder.OnAward(m.from, a)
	if err != nil {
		m.record("award %s -> %s %s: rejected: %v", m.from, to, a.Tender, err)
		return Reply{}, err
	}
	m.record("award %s -> %s %s: %s", m.from, to, a.Tender, describe(r))
	return r, nil
}

func describe(r Reply) string {
	switch r.Type {
	case TypeBid:
		return fmt.Sprintf("bid %.2f", r.Score)
	case TypeDecline:
		return fmt.Sprintf("decline [%s]", strings.Join(r.Reasons, "; "))
	}
	return strings.TrimPrefix(r.Type, "sched.")
}

func fields(s string) []string {
	// deny="a message" keeps its spaces.
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if i := strings.Index(s, `="`); i >= 0 && !strings.ContainsAny(s[:i], " ") {
			end := strings.Index(s[i+2:], `"`)
			out = append(out, s[:i+1]+s[i+2:i+2+end])
			s = s[i+3+end:]
			continue
		}
		f, rest, _ := strings.Cut(s, " ")
		out = append(out, f)
		s = rest
	}
	return out
}

func atoi(t *testing.T, s string) int64 {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return v
}

func quantity(t *testing.T, s string) int64 {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return q.Value()
}
