package membership

import (
	"fmt"
	"math/rand/v2"
	"sort"
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
	// slow, if set, says whether a node is starved of CPU at a step: it
	// neither ticks nor reads then, and what is sent to it waits.
	slow func(id string, step int) bool
	// lossTo adds loss of what one node receives.
	lossTo map[string]float64
	held   []delivery
	steps  int
	sent   int // messages sent, delivered or not
}

type delivery struct {
	from, to string
	m        Message
}

type port struct {
	n    *network
	from string
}

func (p port) Send(to string, m Message) {
	p.n.sent++
	p.n.queue = append(p.n.queue, delivery{p.from, to, m})
}

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
	nw.steps++
	starved := func(id string) bool { return nw.slow != nil && nw.slow(id, nw.steps) }
	nw.queue, nw.held = append(nw.held, nw.queue...), nil
	for _, id := range nw.ids {
		if !nw.down[id] && !starved(id) {
			nw.nodes[id].Tick()
		}
	}
	for rounds := 0; len(nw.queue) > 0 && rounds < 10; rounds++ {
		q := nw.queue
		nw.queue = nil
		for _, d := range q {
			if nw.down[d.from] || nw.down[d.to] || nw.cut[[2]string{d.from, d.to}] || nw.rng.Float64() < nw.loss+nw.lossTo[d.to] {
				continue
			}
			if starved(d.to) {
				nw.held = append(nw.held, delivery{d.from, d.to, d.m})
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

// deadEverywhere reports whether every other member holds id dead.
func (nw *network) deadEverywhere(id string) bool {
	for _, other := range nw.ids {
		if st, _ := nw.nodes[other].State(id); other != id && st != Dead {
			return false
		}
	}
	return true
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
	bound := 4*cfg.ProbePeriod + cfg.ProbePeriod + cfg.SuspicionMax + 2
	for tick := 1; tick <= bound; tick++ {
		nw.step()
		if nw.deadEverywhere("n3") {
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
				// Four survivors saw it: a confident death, on which its pods
				// are re-placed at once.
				if !nw.nodes[id].Confirmed("n3") {
					t.Errorf("%s holds n3's death unconfirmed", id)
				}
			}
			return
		}
	}
	t.Fatalf("n3 not declared dead by everyone within %d ticks", bound)
}

// TestLoneWitnessDeathIsUnconfirmed: in a fabric of two, the survivor
// declares the other dead, but no one can confirm it; a clean leave is
// confirmed by its nature.
func TestLoneWitnessDeathIsUnconfirmed(t *testing.T) {
	cfg := DefaultLANConfig()
	nw := newNetwork(t, 2, cfg)
	nw.run(10)
	nw.down["n1"] = true
	nw.run(10*cfg.ProbePeriod + cfg.SuspicionMax*cfg.MaxHealth)
	if st, _ := nw.nodes["n0"].State("n1"); st != Dead || nw.nodes["n0"].Confirmed("n1") {
		t.Fatalf("n0 holds n1 %v, confirmed %v; want Dead, unconfirmed", st, nw.nodes["n0"].Confirmed("n1"))
	}
	// Gossip from a member that held the confirmations (the declarer in a
	// larger fabric) confirms it, and says so: the scheduler re-places the
	// dead node's pods on that event rather than 5 s later.
	n0 := nw.nodes["n0"]
	n0.Events()
	n0.apply(Update{ID: "n1", State: Dead, Incarnation: n0.members["n1"].incarnation, Confirmed: true})
	if ev := n0.Events(); !n0.Confirmed("n1") || len(ev) != 1 || ev[0].Kind != NodeDeadConfirmed || !ev[0].Confirmed {
		t.Fatalf("after a confirmed Dead gossip: confirmed %v, events %+v", n0.Confirmed("n1"), ev)
	}
	nw = newNetwork(t, 2, cfg)
	nw.run(10)
	nw.nodes["n1"].Leave()
	nw.run(10 * cfg.ProbePeriod)
	if st, _ := nw.nodes["n0"].State("n1"); st != Left || !nw.nodes["n0"].Confirmed("n1") {
		t.Fatalf("n0 holds n1 %v, confirmed %v; want Left, confirmed", st, nw.nodes["n0"].Confirmed("n1"))
	}
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
	nw.run(DefaultLANConfig().SuspicionMax * 2)
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
	nw.run(5*cfg.ProbePeriod + cfg.SuspicionMax + 10)
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
	nw.run((10*cfg.ProbePeriod + cfg.SuspicionMax) * cfg.MaxHealth) // in the poorest health
	if st, _ := nw.nodes[left[0]].State(right[0]); st != Dead {
		t.Fatalf("%s holds %s %v across the partition, want Dead", left[0], right[0], st)
	}
	// Two of five cannot confirm the other side's deaths (it may be their
	// own link that failed); three of five can.
	for _, r := range right {
		if nw.nodes[left[0]].Confirmed(r) {
			t.Errorf("the minority confirmed %s's death", r)
		}
	}
	if !nw.nodes[right[0]].Confirmed(left[0]) {
		t.Errorf("the majority holds %s's death unconfirmed", left[0])
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

// lanTiming is the protocol the nodes run by default (20 ms ticks).
func lanTiming() Config { return Presets[DefaultPreset].Protocol }

// TestLocalHealthSparesHealthyMembers: one of five members loses 75 % of what it
// receives (its own link is bad), for ten minutes of 20 ms ticks. Its
// probes fail with no nack from the helpers, so Lifeguard's local health
// stretches its timeouts, and it declares healthy members dead far less
// often than the same run with local health turned off (MaxHealth 1). (The
// others may well declare it dead: it hardly hears them.)
func TestLocalHealthSparesHealthyMembers(t *testing.T) {
	run := func(cfg Config) (healthy []string, health int) {
		nw := newNetwork(t, 5, cfg)
		nw.lossTo = map[string]float64{"n2": 0.75}
		for range 30000 {
			nw.step()
			health = max(health, nw.nodes["n2"].Health())
		}
		for _, id := range nw.ids {
			for _, e := range nw.log[id] {
				if e.Kind == NodeDead && e.Member != "n2" {
					healthy = append(healthy, id+" declared "+e.Member)
				}
			}
		}
		return healthy, health
	}
	deaths, health := run(lanTiming())
	if health == 0 {
		t.Error("the lossy member never lowered its own health")
	}
	cfg := lanTiming()
	cfg.MaxHealth = 1
	without, _ := run(cfg)
	t.Logf("healthy members declared dead: %d with local health, %d without", len(deaths), len(without))
	if len(without) == 0 || 3*len(deaths) > len(without) {
		t.Errorf("local health should cut the deaths of healthy members at least threefold: %d with, %d without", len(deaths), len(without))
	}
}

// TestNoDeathsUnderLoss: five members losing 10 % and then 20 % of their
// messages, each for ten minutes of 20 ms ticks: nobody is declared dead.
func TestNoDeathsUnderLoss(t *testing.T) {
	for _, loss := range []float64{0.10, 0.20} {
		nw := newNetwork(t, 5, lanTiming())
		nw.loss = loss
		nw.run(30000)
		suspicions := 0
		for _, id := range nw.ids {
			for _, e := range nw.log[id] {
				if e.Kind == NodeSuspect {
					suspicions++
				}
			}
		}
		t.Logf("%.0f %% loss: %d suspicions", 100*loss, suspicions)
		if d := nw.deaths(); len(d) != 0 {
			t.Errorf("%.0f %% loss: %d deaths: %v", 100*loss, len(d), d[:min(len(d), 5)])
		}
	}
}

// TestOneProbePerPeriodAtRest: with nobody failing, each member pings one
// other per ProbePeriod and each ping is acked: about two messages per
// member per period, as memberlist sends at its probe interval. (A probe
// acked at once used to start the next at the next tick: five times the
// traffic at rest.)
func TestOneProbePerPeriodAtRest(t *testing.T) {
	cfg := lanTiming()
	nw := newNetwork(t, 5, cfg)
	nw.run(100) // settle
	nw.sent = 0
	const ticks = 1000
	nw.run(ticks)
	perPeriod := float64(nw.sent) / float64(len(nw.ids)) / (float64(ticks) / float64(cfg.ProbePeriod))
	t.Logf("%.2f messages per member per probe period", perPeriod)
	if perPeriod < 1.5 || perPeriod > 2.5 {
		t.Fatalf("%.2f messages per member per probe period, want about 2 (a ping and its ack)", perPeriod)
	}
}

// TestDetectionTime: a member of five fails at a random moment, 200 times;
// every other member declares it dead within 1 s (50 ticks of 20 ms) in
// 99 % of the runs.
func TestDetectionTime(t *testing.T) {
	const runs = 200
	var ticks []int
	for r := range runs {
		nw := newNetwork(t, 5, lanTiming())
		nw.rng = rand.New(rand.NewPCG(uint64(r), 7))
		for id, n := range nw.nodes {
			n.rng = rand.New(rand.NewPCG(uint64(r), uint64(len(id))+uint64(id[1])))
		}
		nw.run(100 + r%37)
		nw.down["n3"] = true
		for tick := 1; ; tick++ {
			nw.step()
			if nw.deadEverywhere("n3") {
				ticks = append(ticks, tick)
				break
			}
			if tick > 1000 {
				t.Fatalf("run %d: n3 not dead everywhere after %d ticks", r, tick)
			}
		}
	}
	sort.Ints(ticks)
	p50, p99 := ticks[runs/2], ticks[runs*99/100]
	t.Logf("ticks until dead everywhere: p50 %d, p99 %d, max %d", p50, p99, ticks[runs-1])
	if p99 > 50 {
		t.Errorf("p99 %d ticks, want ≤ 50 (1 s at 20 ms)", p99)
	}
}

// TestConfirmationsShortenSuspicion: a suspicion lasts SuspicionMax with no
// confirmation, less with one, SuspicionMin with Confirmations of them.
func TestConfirmationsShortenSuspicion(t *testing.T) {
	cfg := lanTiming()
	nw := newNetwork(t, 5, cfg)
	m := nw.nodes["n0"]
	m.apply(Update{ID: "n1", State: Suspect, From: "n0"})
	mem := m.members["n1"]
	var got []int
	for _, from := range []string{"n2", "n2", "n3", "n4"} {
		got = append(got, m.suspicion(mem))
		m.apply(Update{ID: "n1", State: Suspect, From: from})
	}
	want := []int{cfg.SuspicionMax, 24, 24, cfg.SuspicionMin}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("suspicion after 0, 1, 1 (a repeat), 2 confirmations: %v ticks, want %v", got, want)
	}
}

// TestHealthFollowsOwnFailures: a member that hears nothing (its inbound
// link is dead) sees every probe fail with no nack and worsens its health
// to the limit, which stretches its probe period; once it hears again,
// successful probes bring its health back to 0.
func TestHealthFollowsOwnFailures(t *testing.T) {
	cfg := lanTiming()
	nw := newNetwork(t, 5, cfg)
	for _, id := range nw.ids[1:] {
		nw.cut[[2]string{id, "n0"}] = true
	}
	nw.run(20 * cfg.ProbePeriod * cfg.MaxHealth)
	if h := nw.nodes["n0"].Health(); h != cfg.MaxHealth-1 {
		t.Fatalf("health of a node that hears nothing: %d, want %d", h, cfg.MaxHealth-1)
	}
	nw.cut = map[[2]string]bool{}
	for _, id := range nw.ids[1:] { // the announcements of the others
		nw.nodes["n0"].Heard(id)
	}
	nw.run(20 * cfg.ProbePeriod * cfg.MaxHealth)
	if h := nw.nodes["n0"].Health(); h != 0 {
		t.Errorf("health once it hears again: %d, want 0", h)
	}
	for _, id := range nw.ids[1:] {
		if h := nw.nodes[id].Health(); h != 0 {
			t.Errorf("health of %s, whose probes all succeed: %d", id, h)
		}
	}
}
