// Package membership tracks which nodes of the fabric are alive, SWIM-style:
// each protocol period a node probes one member directly; if the member does
// not answer in time it asks k others to probe it (indirect probes), so one
// lossy link does not condemn a node; a member no probe reaches is
// suspected, and declared dead only if the suspicion is not refuted in time.
// Membership changes ride on the probes as gossip, with incarnation numbers
// so that a member can refute a suspicion about itself.
//
// It carries Lifeguard's three refinements (Dadgar et al., "Lifeguard:
// Local Health Awareness for More Accurate Failure Detection", 2018, as
// hashicorp/memberlist implements them), so that a node that is itself slow
// (a starved CPU, a lossy link of its own) does not condemn healthy ones:
//   - local health: a node whose probes fail, whose helpers do not even
//     answer with a nack, or who has to refute suspicions about itself,
//     stretches its own probe period and timeouts (up to MaxHealth times);
//     each successful probe shrinks the stretch again;
//   - suspicion that shrinks with confirmations: a suspicion lasts
//     SuspicionMax when one member holds it, and shrinks towards
//     SuspicionMin as other members independently suspect the same
//     member;
//   - refutation first: a probe of a suspected member carries the
//     suspicion ahead of any other gossip, so the member hears it and
//     refutes at once, and the freshest gossip (a refutation) goes first.
//
// Probe timeouts are also derived from measured round-trip times
// (SetRTT), so a far member is not suspected for being far.
//
// The protocol core is deterministic: time advances only through Tick, I/O
// goes through a Transport, and randomness comes from a seeded source, so
// tests drive whole clusters step by step.
package membership

import (
	"fmt"
	"math"
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
	// NodeDeadConfirmed: a member this node held dead, unconfirmed, is
	// confirmed dead by the gossip of whoever declared it (Event.Confirmed).
	NodeDeadConfirmed EventKind = "NodeDeadConfirmed"
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
	// Confirmed, for NodeDead, says the death is confident: independent
	// members suspected the member before it was declared dead (see
	// Memberlist.Confirmed). NodeLeft is always confirmed.
	Confirmed bool
}

// Update is one piece of gossip: a member's state at an incarnation.
type Update struct {
	ID          string
	State       State
	Incarnation uint64
	// From is who suspects, for a Suspect update: the suspicion shrinks as
	// independent suspecters confirm it. Empty from nodes that predate it.
	From string `json:",omitempty"`
	// Confirmed, for a Dead update, says whoever declared the death held
	// enough independent suspicions of the member to be confident
	// (Memberlist.Confirmed).
	Confirmed bool `json:",omitempty"`
}

// Message kinds.
const (
	Ping    = "ping"
	PingReq = "ping-req"
	Ack     = "ack"
	// Nack is a helper's answer to a ping-req whose target did not answer
	// in time: the asker learns that its own link to the helper works, so
	// the failure is not its own.
	Nack = "nack"
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
	// ProbeTimeout is the least time a direct probe waits for an ack
	// before indirect probes are sent (more for a member whose measured
	// round-trip time asks for it).
	ProbeTimeout int
	// ProbePeriod is how long a probe round lasts in all; a member whose
	// round ends without an ack is suspected.
	ProbePeriod int
	// IndirectProbes is k, the number of members asked to probe.
	IndirectProbes int
	// SuspicionMin and SuspicionMax bound how long a suspicion lasts
	// before the member is declared dead: SuspicionMax while one member
	// suspects it, down to SuspicionMin once Confirmations others have
	// independently suspected it too.
	SuspicionMin, SuspicionMax int
	// Confirmations is how many independent suspicions bring a suspicion
	// down to SuspicionMin (fewer in a fabric too small to give them).
	Confirmations int
	// MaxHealth bounds the local health multiplier: a node in poor health
	// probes up to MaxHealth times slower and waits that much longer.
	MaxHealth int
	// GossipFanout bounds the updates piggybacked on a message.
	GossipFanout int
	// Retransmit is how many messages carry each update.
	Retransmit int
}

// DefaultLANConfig suits a LAN with a 10 ms tick: a dead member is suspected
// within ~50 ms and declared dead within 0.2–0.6 s more.
func DefaultLANConfig() Config {
	return Config{ProbeTimeout: 2, ProbePeriod: 5, IndirectProbes: 3, SuspicionMin: 20, SuspicionMax: 60, Confirmations: 2,
		MaxHealth: 8, GossipFanout: 8, Retransmit: 6}
}

type member struct {
	state       State
	incarnation uint64
	suspectAt   int             // tick the suspicion started
	suspecters  map[string]bool // who holds the suspicion (its confirmations)
	rto         int             // probe timeout its round-trip times ask for (ticks)
	confirmed   bool            // dead after confirmed suspicion, or left
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
	// health is Lifeguard's local health score, 0 (healthy) to
	// MaxHealth-1: timeouts and the probe period are scaled by health+1.
	health int

	now      int
	seq      uint64
	order    []string // probe order, reshuffled each pass
	next     int
	urgent   string // a member suspected by others, probed next to confirm or refute
	probe    *probe
	relaying map[uint64]relay // probes done for others: our seq → requester
}

type probe struct {
	target   string
	seq      uint64
	started  int
	timeout  int // ticks until indirect probes
	period   int // ticks until the target is suspected
	indirect bool
	helpers  int // ping-reqs sent, so nacks expected
	nacks    int
	acked    bool
}

type relay struct {
	origin    string
	originSeq uint64
	started   int
	nacked    bool
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

// Confirmed reports whether member id is gone with confidence: it left, or
// it was declared dead once enough members independently suspected it
// (Config.Confirmations besides the first, or a majority of the fabric if
// that is fewer; see confirms), by this node's count or by whoever
// declared the death. A death that only one member, or only the minority
// side of a partition, saw is not confirmed: their own links may be the
// fault.
func (m *Memberlist) Confirmed(id string) bool {
	mem := m.members[id]
	return mem != nil && (mem.state == Dead || mem.state == Left) && mem.confirmed
}

// Health is the local health score: 0 when this node's probes succeed, up
// to MaxHealth-1 when it has reason to think itself slow.
func (m *Memberlist) Health() int { return m.health }

// SetRTT sets the probe timeout member id's measured round-trip times ask
// for, in ticks (the Service derives it as TCP derives its retransmission
// timeout); the timeout used is never below ProbeTimeout.
func (m *Memberlist) SetRTT(id string, ticks int) {
	if mem := m.members[id]; mem != nil {
		mem.rto = ticks
	}
}

func (m *Memberlist) addHealth(delta int) {
	m.health = max(0, min(m.health+delta, m.cfg.MaxHealth-1))
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
				// Being suspected is a sign this node is slow to answer:
				// Lifeguard stretches its own timeouts.
				m.addHealth(1)
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
		mem = &member{state: u.State, incarnation: u.Incarnation, suspectAt: m.now}
		if u.State == Suspect {
			mem.suspecters = map[string]bool{u.From: true}
		}
		m.members[u.ID] = mem
		m.events = append(m.events, Event{Kind: NodeJoined, Member: u.ID, Incarnation: u.Incarnation})
		m.order = append(m.order, u.ID)
		m.enqueue(u)
		return true
	}
	if mem.state == Dead || mem.state == Left {
		if u.State == Dead && u.Incarnation == mem.incarnation && u.Confirmed && !mem.confirmed {
			// Whoever declared the death had the confirmations this node
			// lacked: it is confident now, and passes that on.
			mem.confirmed = true
			m.events = append(m.events, Event{Kind: NodeDeadConfirmed, Member: u.ID, Incarnation: u.Incarnation, Confirmed: true})
			m.enqueue(u)
			return true
		}
		// Only a newer incarnation brings a member back.
		if u.State != Alive || u.Incarnation <= mem.incarnation {
			return false
		}
	}
	if u.State == Suspect && mem.state == Suspect && u.Incarnation == mem.incarnation {
		// The same suspicion from someone else: a confirmation, which
		// shortens it, and is passed on so that others count it too.
		if u.From == "" || mem.suspecters[u.From] {
			return false
		}
		mem.suspecters[u.From] = true
		m.enqueue(u)
		return true
	}
	if !overrides(u, mem) {
		return false
	}
	prev := mem.state
	switch u.State {
	case Dead:
		u.Confirmed = u.Confirmed || (prev == Suspect && m.confirms(mem))
		mem.confirmed = u.Confirmed
	case Left:
		mem.confirmed = true
	default:
		mem.confirmed = false
	}
	mem.state, mem.incarnation, mem.suspecters = u.State, u.Incarnation, nil
	if u.State == Suspect {
		mem.suspectAt, mem.suspecters = m.now, map[string]bool{u.From: true}
		if u.From != m.self {
			// Probe it next: this node's own probe confirms the suspicion
			// (so a dead member is declared dead sooner) or carries it to
			// the member, which refutes.
			m.urgent = u.ID
		}
	}
	if prev != u.State {
		m.events = append(m.events, Event{Kind: eventKind(prev, u.State), Member: u.ID, Incarnation: u.Incarnation, Confirmed: mem.confirmed})
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

// suspicion is how long mem's current suspicion lasts, by Lifeguard's
// rule: from SuspicionMax with no confirmation down to SuspicionMin with k,
// logarithmically (the first confirmations count most). k is Confirmations,
// or fewer when there are not that many members besides the suspected one
// and the first suspecter. A node in poor health waits longer still: its
// own view is the likelier to be wrong.
func (m *Memberlist) suspicion(mem *member) int {
	k := min(m.cfg.Confirmations, len(m.live())-1)
	confirmed := len(mem.suspecters) - 1
	if k < 1 || confirmed >= k {
		return m.scaled(m.cfg.SuspicionMin)
	}
	frac := math.Log(float64(confirmed)+1) / math.Log(float64(k)+1)
	return m.scaled(max(m.cfg.SuspicionMin, int(float64(m.cfg.SuspicionMax)-frac*float64(m.cfg.SuspicionMax-m.cfg.SuspicionMin))))
}

// confirms reports whether mem's suspicion is held by enough members to
// make its death confident: Confirmations of them besides the first, or a
// majority of the fabric (every member this node knows of that has not
// left, the dead and itself included) if that is fewer, and never by one
// member alone. Counting the dead keeps the minority side of a partition
// from confirming the deaths of the other side one by one.
func (m *Memberlist) confirms(mem *member) bool {
	known := 1
	for _, o := range m.members {
		if o.state != Left {
			known++
		}
	}
	need := min(m.cfg.Confirmations+1, known/2+1)
	return need >= 2 && len(mem.suspecters) >= need
}

// enqueue queues u for gossip, replacing older news of the same member.
func (m *Memberlist) enqueue(u Update) {
	for _, g := range m.queue {
		if g.u.ID == u.ID {
			g.u, g.left = u, m.cfg.Retransmit
			return
		}
	}
	m.queue = append(m.queue, &gossip{u: u, left: m.cfg.Retransmit})
}

// piggyback takes up to GossipFanout updates for one message, those sent
// least often first (the newest news, such as a refutation).
func (m *Memberlist) piggyback(first ...Update) []Update {
	out := first
	sort.SliceStable(m.queue, func(i, j int) bool { return m.queue[i].left > m.queue[j].left })
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

// send sends msg with gossip. A ping to a member this node suspects carries
// the suspicion first, so that the member can refute it at once.
func (m *Memberlist) send(to string, msg Message) {
	var first []Update
	if mem := m.members[to]; msg.Kind == Ping && mem != nil && mem.state == Suspect {
		first = []Update{{ID: to, State: Suspect, Incarnation: mem.incarnation, From: m.self}}
	}
	msg.Gossip = m.piggyback(first...)
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
		if mem.state == Suspect && m.now-mem.suspectAt >= m.suspicion(mem) {
			m.apply(Update{ID: id, State: Dead, Incarnation: mem.incarnation})
		}
	}
	for seq, r := range m.relaying {
		age := m.now - r.started
		switch {
		case age > m.scaled(m.cfg.ProbePeriod):
			delete(m.relaying, seq) // the target never answered; the asker has given up
		case !r.nacked && age >= m.scaled(m.cfg.ProbeTimeout)*4/5:
			// Early enough to reach the asker before its round ends.
			r.nacked = true
			m.relaying[seq] = r
			m.send(r.origin, Message{Kind: Nack, Seq: r.originSeq})
		}
	}
	if p := m.probe; p != nil {
		age := m.now - p.started
		switch {
		case p.acked:
			// The round lasts its period even when the ack came at once:
			// one probe per ProbePeriod (as memberlist's ProbeInterval),
			// not one per tick, which multiplied the traffic at rest. Only
			// a suspect to confirm (urgent) starts the next round early,
			// so confirmations do not wait out the period.
			if age >= m.scaled(m.cfg.ProbePeriod) || m.urgent != "" {
				m.addHealth(-1)
				m.probe = nil
			}
		case age >= p.period:
			if mem := m.members[p.target]; mem != nil && (mem.state == Alive || mem.state == Suspect) {
				// A suspicion, or this node's confirmation of another's.
				m.apply(Update{ID: p.target, State: Suspect, Incarnation: mem.incarnation, From: m.self})
			}
			// Helpers that did not even nack suggest the fault is this
			// node's own; with no helpers, the failure itself does.
			if p.helpers > 0 {
				m.addHealth(p.helpers - p.nacks)
			} else {
				m.addHealth(1)
			}
			m.probe = nil
		case age >= p.timeout && !p.indirect:
			p.indirect = true
			helpers := m.live(p.target)
			m.rng.Shuffle(len(helpers), func(i, j int) { helpers[i], helpers[j] = helpers[j], helpers[i] })
			helpers = helpers[:min(len(helpers), m.cfg.IndirectProbes)]
			p.helpers = len(helpers)
			// A second direct ping too (memberlist sends one over TCP): a
			// lost ping or ack alone does not make a suspicion.
			m.send(p.target, Message{Kind: Ping, Seq: p.seq})
			for _, h := range helpers {
				m.send(h, Message{Kind: PingReq, Seq: p.seq, Target: p.target})
			}
		}
	}
	if m.probe == nil {
		m.startProbe()
	}
}

// scaled stretches a number of ticks by the local health multiplier.
func (m *Memberlist) scaled(ticks int) int { return ticks * (m.health + 1) }

func (m *Memberlist) startProbe() {
	if id := m.urgent; id != "" {
		m.urgent = ""
		if mem := m.members[id]; mem != nil && mem.state == Suspect {
			m.probeMember(id, mem)
			return
		}
	}
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
		if mem := m.members[id]; mem.state == Alive || mem.state == Suspect {
			m.probeMember(id, mem)
			return
		}
	}
}

func (m *Memberlist) probeMember(id string, mem *member) {
	m.seq++
	timeout := m.scaled(max(m.cfg.ProbeTimeout, mem.rto))
	m.probe = &probe{target: id, seq: m.seq, started: m.now, timeout: timeout,
		period: max(m.scaled(m.cfg.ProbePeriod), timeout+m.scaled(m.cfg.ProbeTimeout))}
	m.send(id, Message{Kind: Ping, Seq: m.seq})
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
	case Nack:
		if p := m.probe; p != nil && p.seq == msg.Seq && p.indirect {
			p.nacks = min(p.nacks+1, p.helpers)
		}
	}
}
