package membership

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// network is an in-memory network that can take nodes down, cut links and
// drop messages at random.
type network struct {
	nodes map[string]*Memberlist
	ids   []string
	queue []delivery
	down  map[string]bool
	cut   map[[2]string]bool
	loss  float64
	rng   *rand.Rand
	log   map[string][]Event // events per observer
}

type delivery struct {
	from, to string
	m        Message
}

type port struct {
	n    *network
	from string
}

func (p port) Send(to string, m Message) { p.n.queue = append(p.n.queue, delivery{p.from, to, m}) }

func newNetwork(t *testing.T, n int, cfg Config) *network {
	t.Helper()
	nw := &network{nodes: map[string]*Memberlist{}, down: map[string]bool{}, cut: map[[2]string]bool{}, rng: rand.New(rand.NewPCG(1, 2)), log: map[string][]Event{}}
	for i := range n {
		id := fmt.Sprintf("n%d", i)
		nw.ids = append(nw.ids, id)
		nw.nodes[id] = New(id, cfg, port{nw, id}, uint64(i+1))
	}
	for _, a := range nw.ids {
		for _, b := range nw.ids {
			if a != b {
				nw.nodes[a].Add(b)
			}
		}
	}
	return nw
}

// step ticks every live node once and delivers messages until none are left
// (round trips are far shorter than a tick).
func (nw *network) step() {
	for _, id := range nw.ids {
		if !nw.down[id] {
			nw.nodes[id].Tick()
		}
	}
	for rounds := 0; len(nw.queue) > 0 && rounds < 10; rounds++ {
		q := nw.queue
		nw.queue = nil
		for _, d := range q {
			if nw.down[d.from] || nw.down[d.to] || nw.cut[[2]string{d.from, d.to}] || nw.rng.Float64() < nw.loss {
				continue
			}
			nw.nodes[d.to].Receive(d.from, d.m)
		}
	}
	for _, id := range nw.ids {
		nw.log[id] = append(nw.log[id], nw.nodes[id].Events()...)
	}
}

func (nw *network) run(ticks int) {
	for range ticks {
		nw.step()
	}
}

func (nw *network) deaths() []string {
	var out []string
	for _, id := range nw.ids {
		for _, e := range nw.log[id] {
			if e.Kind == NodeDead {
				out = append(out, id+" declared "+e.Member)
			}
		}
	}
	return out
}

func TestDeadNodeIsDeclaredDeadByEveryone(t *testing.T) {
	cfg := DefaultLANConfig()
	nw := newNetwork(t, 5, cfg)
	nw.run(50)
	if d := nw.deaths(); len(d) != 0 {
		t.Fatalf("deaths in a healthy cluster: %v", d)
	}
	nw.down["n3"] = true
	// Bound: every survivor probes n3 within one pass over the members, then
	// the suspicion runs out.
	bound := 4*cfg.ProbePeriod + cfg.ProbePeriod + cfg.SuspicionTicks + 2
	for tick := 1; tick <= bound; tick++ {
		nw.step()
		all := true
		for _, id := range nw.ids {
			if st, _ := nw.nodes[id].State("n3"); id != "n3" && st != Dead {
				all = false
			}
		}
		if all {
			t.Logf("n3 dead everywhere after %d ticks (bound %d)", tick, bound)
			for _, id := range nw.ids {
				if id == "n3" {
					continue
				}
				var kinds []EventKind
				for _, e := range nw.log[id] {
					if e.Member == "n3" {
						kinds = append(kinds, e.Kind)
					}
				}
				if fmt := fmt.Sprint(kinds); fmt != "[NodeJoined NodeSuspect NodeDead]" && fmt != "[NodeJoined NodeDead]" {
					t.Errorf("%s saw %v about n3", id, kinds)
				}
			}
			return
		}
	}
	t.Fatalf("n3 not declared dead by everyone within %d ticks", bound)
}

func TestOneCutLinkDoesNotKill(t *testing.T) {
	nw := newNetwork(t, 5, DefaultLANConfig())
	nw.cut[[2]string{"n1", "n2"}] = true
	nw.cut[[2]string{"n2", "n1"}] = true
	nw.run(1000)
	if d := nw.deaths(); len(d) != 0 {
		t.Fatalf("a single cut link killed nodes: %v", d)
	}
}

func TestNoFalsePositivesUnderFivePercentLoss(t *testing.T) {
	nw := newNetwork(t, 5, DefaultLANConfig())
	nw.loss = 0.05
	nw.run(3000)
	if d := nw.deaths(); len(d) != 0 {
		t.Fatalf("false positives with 5%% loss: %v", d)
	}
}

func TestSuspicionIsRefuted(t *testing.T) {
	nw := newNetwork(t, 3, DefaultLANConfig())
	nw.run(10)
	// n0 hears a (false) rumour that n1 is suspect.
	nw.nodes["n0"].Receive("n2", Message{Kind: Ack, Gossip: []Update{{ID: "n1", State: Suspect}}})
	if st, _ := nw.nodes["n0"].State("n1"); st != Suspect {
		t.Fatalf("rumour not applied: %v", st)
	}
	nw.run(DefaultLANConfig().SuspicionTicks * 2)
	for _, id := range []string{"n0", "n2"} {
		if st, _ := nw.nodes[id].State("n1"); st != Alive {
			t.Fatalf("%s holds n1 %v after the refutation window", id, st)
		}
	}
	if d := nw.deaths(); len(d) != 0 {
		t.Fatalf("deaths: %v", d)
	}
}

func TestLeaveIsGossiped(t *testing.T) {
	nw := newNetwork(t, 4, DefaultLANConfig())
	nw.run(10)
	nw.nodes["n2"].Leave()
	nw.run(20)
	nw.down["n2"] = true
	nw.run(100)
	for _, id := range []string{"n0", "n1", "n3"} {
		if st, _ := nw.nodes[id].State("n2"); st != Left {
			t.Fatalf("%s holds n2 %v, want Left", id, st)
		}
	}
}

// TestRestartedNodeComesBack: a node declared dead that restarts (fresh
// state, incarnation 0) is told it was buried, refutes, and is Alive again
// everywhere.
func TestRestartedNodeComesBack(t *testing.T) {
	cfg := DefaultLANConfig()
	nw := newNetwork(t, 4, cfg)
	nw.run(10)
	nw.down["n1"] = true
	nw.run(5*cfg.ProbePeriod + cfg.SuspicionTicks + 10)
	if st, _ := nw.nodes["n0"].State("n1"); st != Dead {
		t.Fatalf("n1 is %v, want Dead", st)
	}
	nw.nodes["n1"] = New("n1", cfg, port{nw, "n1"}, 99)
	nw.nodes["n1"].Add("n0")
	nw.down["n1"] = false
	nw.run(100)
	for _, id := range []string{"n0", "n2", "n3"} {
		if st, _ := nw.nodes[id].State("n1"); st != Alive {
			t.Errorf("%s holds the restarted n1 %v, want Alive", id, st)
		}
	}
}

// TestPartitionHeals: two sides cut apart declare each other dead and stop
// probing each other; once the cut heals, a sign of life from outside the
// protocol (Heard, as an announcement delivers it) brings every member back
// everywhere.
func TestPartitionHeals(t *testing.T) {
	cfg := DefaultLANConfig()
	nw := newNetwork(t, 5, cfg)
	nw.run(10)
	left, right := nw.ids[:2], nw.ids[2:]
	for _, l := range left {
		for _, r := range right {
			nw.cut[[2]string{l, r}], nw.cut[[2]string{r, l}] = true, true
		}
	}
	nw.run(10*cfg.ProbePeriod + cfg.SuspicionTicks)
	if st, _ := nw.nodes[left[0]].State(right[0]); st != Dead {
		t.Fatalf("%s holds %s %v across the partition, want Dead", left[0], right[0], st)
	}
	// Meanwhile right[0] refutes a suspicion on its own side: the left
	// side buried it at an older incarnation than it now has.
	r0 := nw.nodes[right[0]]
	r0.Receive(right[1], Message{Kind: Ack, Gossip: []Update{{ID: right[0], State: Suspect, Incarnation: r0.incarnation}}})
	nw.run(10)
	nw.cut = map[[2]string]bool{}
	nw.run(100)
	if st, _ := nw.nodes[left[0]].State(right[0]); st != Dead {
		t.Fatalf("%s holds %s %v with no sign of life, want still Dead", left[0], right[0], st)
	}
	for _, a := range nw.ids {
		for _, b := range nw.ids {
			if a != b {
				nw.nodes[a].Heard(b)
			}
		}
	}
	nw.run(100)
	for _, a := range nw.ids {
		if live := nw.nodes[a].live(); len(live) != 4 {
			t.Errorf("%s holds %v alive after the heal, want the other four", a, live)
		}
	}
}
