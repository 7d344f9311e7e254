// Package membership tracks which nodes of the fabric are alive, SWIM-style:
// each protocol period a node probes one member directly; if the member does
// not answer in time it asks k others to probe it (indirect probes), so one
// lossy link does not condemn a node; a member no probe reaches is
// suspected, and declared dead only if the suspicion is not refuted in time.
// Membership changes ride on the probes as gossip, with incarnation numbers
// so that a member can refute a suspicion about itself.
//
// The protocol core is deterministic: time advances only through Tick, I/O
// goes through a Transport, and randomness comes from a seeded source, so
// tests drive whole clusters step by step.
package membership

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"
)

// State of a member.
type State int

// Member states.
const (
	Alive State = iota
	Suspect
	Dead
	Left
)

func (s State) String() string {
	if s < Alive || s > Left {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return [...]string{"Alive", "Suspect", "Dead", "Left"}[s]
}

// valid reports whether u is an update the protocol knows: gossip with an
// unknown state or no member is dropped, whoever signed it.
func (u Update) valid() bool { return u.ID != "" && u.State >= Alive && u.State <= Left }

// EventKind says how a member's state changed.
type EventKind string

// Event kinds, as the machine plane reports them (also the values of the
// mycel_membership_events_total label).
const (
	NodeJoined  EventKind = "NodeJoined" // a new member, or one back from the dead
	NodeSuspect EventKind = "NodeSuspect"
	NodeDead    EventKind = "NodeDead"
	NodeLeft    EventKind = "NodeLeft"
	NodeAlive   EventKind = "NodeAlive" // a suspected member refuted the suspicion
)

// Event is a change in what this node believes about a member.
type Event struct {
	Kind   EventKind
	Member string
	// Incarnation is the member's incarnation in the update that changed
	// its state.
	Incarnation uint64
	// At is when the change was observed; the protocol core, which knows
	// only ticks, leaves it zero and the Service sets it.
	At time.Time
}

// Update is one piece of gossip: a member's state at an incarnation.
type Update struct {
	ID          string
	State       State
	Incarnation uint64
}

// Message kinds.
const (
	Ping    = "ping"
	PingReq = "ping-req"
	Ack     = "ack"
)

// Message is what members send each other.
type Message struct {
	Kind   string
	Seq    uint64
	Target string // for ping-req: whom to probe; for an ack relayed: who answered
	Origin string // for a probe done on someone's behalf: who asked
	Gossip []Update
}

// Transport sends messages; delivery may fail silently (UDP-like).
type Transport interface {
	Send(to string, m Message)
}

// Config sets the protocol's timing, in ticks.
type Config struct {
	// ProbeTimeout is how long a direct probe waits for an ack before
	// indirect probes are sent.
	ProbeTimeout int
	// ProbePeriod is how long a probe round lasts in all; a member whose
	// round ends without an ack is suspected.
	ProbePeriod int
	// IndirectProbes is k, the number of members asked to probe.
	IndirectProbes int
	// SuspicionTicks is how long a suspicion lasts before the member is
	// declared dead.
	SuspicionTicks int
	// GossipFanout bounds the updates piggybacked on a message.
	GossipFanout int
	// Retransmit is how many messages carry each update.
	Retransmit int
}

// DefaultLANConfig suits a LAN with a 10 ms tick: a dead member is suspected
// within ~50 ms and declared dead within ~250 ms more.
func DefaultLANConfig() Config {
	return Config{ProbeTimeout: 2, ProbePeriod: 5, IndirectProbes: 3, SuspicionTicks: 25, GossipFanout: 8, Retransmit: 6}
}

type member struct {
	state       State
	incarnation uint64
	suspectAt   int // tick the suspicion started
}

type gossip struct {
	u    Update
	left int // retransmissions left
}

// Memberlist is one node's view. It is not safe for concurrent use: the
// owner serializes Tick and Receive.
type Memberlist struct {
	self        string
	incarnation uint64
	left        bool
	cfg         Config
	tr          Transport
	rng         *rand.Rand
	members     map[string]*member
	events      []Event
	queue       []*gossip

	now      int
	seq      uint64
	order    []string // probe order, reshuffled each pass
	next     int
	probe    *probe
	relaying map[uint64]relay // probes done for others: our seq → requester
}

type probe struct {
	target   string
	seq      uint64
	started  int
	indirect bool
	acked    bool
}

type relay struct {
	origin    string
	originSeq uint64
	started   int
}

// New returns the view of node self.
func New(self string, cfg Config, tr Transport, seed uint64) *Memberlist {
	return &Memberlist{self: self, cfg: cfg, tr: tr, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		members: map[string]*member{}, relaying: map[uint64]relay{}}
}

// Add makes id a member (a node learned from the DHT or gossip).
func (m *Memberlist) Add(id string) {
	m.apply(Update{ID: id, State: Alive})
}

// Heard handles a sign of life from outside the protocol (an announcement)
// from a member this node buried: it restarted, or a partition between the
// two healed. Neither side probes a member it holds dead, so nothing else
// would bring it back: ping it with the news of its death, so that it
// refutes with a newer incarnation, which its ack carries back.
func (m *Memberlist) Heard(id string) {
	mem, ok := m.members[id]
	if !ok || (mem.state != Dead && mem.state != Left) {
		return
	}
	m.seq++
	msg := Message{Kind: Ping, Seq: m.seq}
	msg.Gossip = append([]Update{{ID: id, State: mem.state, Incarnation: mem.incarnation}}, m.piggyback()...)
	m.tr.Send(id, msg)
}

// Leave announces that this node leaves on purpose.
func (m *Memberlist) Leave() {
	m.left = true
	m.incarnation++
	m.enqueue(Update{ID: m.self, State: Left, Incarnation: m.incarnation})
}

// State returns what this node believes about id.
func (m *Memberlist) State(id string) (State, bool) {
	mem, ok := m.members[id]
	if !ok {
		return 0, false
	}
	return mem.state, true
}

// Members lists the known members (not self), sorted.
func (m *Memberlist) Members() []string {
	out := make([]string, 0, len(m.members))
	for id := range m.members {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Events returns and clears the events since the last call.
func (m *Memberlist) Events() []Event {
	ev := m.events
	m.events = nil
	return ev
}

// apply merges an update, returning whether it changed anything.
func (m *Memberlist) apply(u Update) bool {
	if u.ID == m.self {
		// Someone suspects (or buried) us, or still holds that we left before
		// a restart: refute with a higher incarnation. News older than our
		// incarnation (we refuted already, but the refutation never reached
		// that side) gets our current one again.
		if u.State != Alive && !m.left {
			if u.Incarnation >= m.incarnation {
				m.incarnation = u.Incarnation + 1
			}
			m.enqueue(Update{ID: m.self, State: Alive, Incarnation: m.incarnation})
		}
		return false
	}
	mem, known := m.members[u.ID]
	if !known {
		if u.State == Dead || u.State == Left {
			return false
		}
		m.members[u.ID] = &member{state: u.State, incarnation: u.Incarnation, suspectAt: m.now}
		m.events = append(m.events, Event{Kind: NodeJoined, Member: u.ID, Incarnation: u.Incarnation})
		m.order = append(m.order, u.ID)
		m.enqueue(u)
		return true
	}
	if mem.state == Dead || mem.state == Left {
		// Only a newer incarnation brings a member back.
		if u.State != Alive || u.Incarnation <= mem.incarnation {
			return false
		}
	}
	if !overrides(u, mem) {
		return false
	}
	prev := mem.state
	mem.state, mem.incarnation = u.State, u.Incarnation
	if u.State == Suspect && prev != Suspect {
		mem.suspectAt = m.now
	}
	if prev != u.State {
		m.events = append(m.events, Event{Kind: eventKind(prev, u.State), Member: u.ID, Incarnation: u.Incarnation})
	}
	m.enqueue(u)
	return true
}

// overrides reports whether u supersedes what we hold about its member, by
// SWIM's rules: a higher incarnation wins; at the same incarnation
// Suspect beats Alive, and Dead or Left beat both.
func overrides(u Update, mem *member) bool {
	switch {
	case u.Incarnation > mem.incarnation:
		return true
	case u.Incarnation < mem.incarnation:
		return false
	}
	return rank(u.State) > rank(mem.state)
}

func rank(s State) int {
	switch s {
	case Alive:
		return 0
	case Suspect:
		return 1
	}
	return 2
}

func eventKind(prev, next State) EventKind {
	switch next {
	case Suspect:
		return NodeSuspect
	case Dead:
		return NodeDead
	case Left:
		return NodeLeft
	}
	if prev == Dead || prev == Left {
		return NodeJoined
	}
	return NodeAlive
}

func (m *Memberlist) enqueue(u Update) {
	for _, g := range m.queue {
		if g.u.ID == u.ID {
			g.u, g.left = u, m.cfg.Retransmit
			return
		}
	}
	m.queue = append(m.queue, &gossip{u: u, left: m.cfg.Retransmit})
}

// piggyback takes up to GossipFanout updates for one message.
func (m *Memberlist) piggyback() []Update {
	var out []Update
	kept := m.queue[:0]
	for _, g := range m.queue {
		if len(out) < m.cfg.GossipFanout {
			out = append(out, g.u)
			g.left--
		}
		if g.left > 0 {
			kept = append(kept, g)
		}
	}
	m.queue = kept
	return out
}

func (m *Memberlist) send(to string, msg Message) {
	msg.Gossip = m.piggyback()
	m.tr.Send(to, msg)
}

// live lists members a probe may go to, except the given ones.
func (m *Memberlist) live(except ...string) []string {
	var out []string
	for _, id := range m.Members() {
		if st := m.members[id].state; st != Alive && st != Suspect {
			continue
		}
		skip := false
		for _, e := range except {
			skip = skip || id == e
		}
		if !skip {
			out = append(out, id)
		}
	}
	return out
}

// Tick advances the protocol by one tick.
func (m *Memberlist) Tick() {
	m.now++
	// Suspicions that ran out become deaths.
	for _, id := range m.Members() {
		mem := m.members[id]
		if mem.state == Suspect && m.now-mem.suspectAt >= m.cfg.SuspicionTicks {
			m.apply(Update{ID: id, State: Dead, Incarnation: mem.incarnation})
		}
	}
	for seq, r := range m.relaying {
		if m.now-r.started > m.cfg.ProbePeriod {
			delete(m.relaying, seq) // the target never answered; the asker has given up
		}
	}
	if p := m.probe; p != nil {
		age := m.now - p.started
		switch {
		case p.acked:
			m.probe = nil
		case age >= m.cfg.ProbePeriod:
			if mem := m.members[p.target]; mem != nil && mem.state == Alive {
				m.apply(Update{ID: p.target, State: Suspect, Incarnation: mem.incarnation})
			}
			m.probe = nil
		case age >= m.cfg.ProbeTimeout && !p.indirect:
			p.indirect = true
			helpers := m.live(p.target)
			m.rng.Shuffle(len(helpers), func(i, j int) { helpers[i], helpers[j] = helpers[j], helpers[i] })
			for _, h := range helpers[:min(len(helpers), m.cfg.IndirectProbes)] {
				m.send(h, Message{Kind: PingReq, Seq: p.seq, Target: p.target})
			}
		}
	}
	if m.probe == nil {
		m.startProbe()
	}
}

func (m *Memberlist) startProbe() {
	for tries := 0; tries <= len(m.order); tries++ {
		if m.next >= len(m.order) {
			m.next = 0
			m.rng.Shuffle(len(m.order), func(i, j int) { m.order[i], m.order[j] = m.order[j], m.order[i] })
		}
		if len(m.order) == 0 {
			return
		}
		id := m.order[m.next]
		m.next++
		if st := m.members[id].state; st == Alive || st == Suspect {
			m.seq++
			m.probe = &probe{target: id, seq: m.seq, started: m.now}
			m.send(id, Message{Kind: Ping, Seq: m.seq})
			return
		}
	}
}

// Receive handles a message from a member.
func (m *Memberlist) Receive(from string, msg Message) {
	if mem, known := m.members[from]; !known && from != m.self {
		m.Add(from)
	} else if known && (mem.state == Dead || mem.state == Left) {
		// A member we buried is talking (it restarted, or was cut off and
		// declared dead): tell it, so it refutes with a newer incarnation.
		m.enqueue(Update{ID: from, State: mem.state, Incarnation: mem.incarnation})
	}
	for _, u := range msg.Gossip {
		if u.valid() {
			m.apply(u)
		}
	}
	switch msg.Kind {
	case Ping:
		m.send(from, Message{Kind: Ack, Seq: msg.Seq, Target: m.self})
	case PingReq:
		m.seq++
		m.relaying[m.seq] = relay{origin: from, originSeq: msg.Seq, started: m.now}
		m.send(msg.Target, Message{Kind: Ping, Seq: m.seq})
	case Ack:
		if r, ok := m.relaying[msg.Seq]; ok {
			delete(m.relaying, msg.Seq)
			m.send(r.origin, Message{Kind: Ack, Seq: r.originSeq, Target: msg.Target})
			return
		}
		// An ack only completes the probe; a suspicion is cleared by the
		// member's own refutation (a higher incarnation), which it gossips.
		if p := m.probe; p != nil && p.seq == msg.Seq && msg.Target == p.target {
			p.acked = true
		}
	}
}
