package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mycelfabric/mycel/machineplane/bus"
	"github.com/mycelfabric/mycel/machineplane/noderecord"
	"github.com/mycelfabric/mycel/securityplane/envelope"
)

// Subjects and envelope types the service uses (docs/protocols.md).
const (
	SubjectAnnounce = "mycel.v1.members.announce"    // broadcast
	subjectDirectF  = "mycel.v1.members.announce.%s" // to one peer
	subjectSWIMF    = "mycel.v1.swim.%s"             // to one peer
	TypeAnnounce    = "members.announce/v1"          // payload: signed node record
	TypeSWIM        = "swim/v1"                      // payload: Message
	announceEvery   = 10 * time.Second
	// firstAnnounceBackoff is the wait after the first announcement of a
	// schedule; each next wait doubles, up to announceEvery.
	firstAnnounceBackoff = 250 * time.Millisecond
)

// MaxMessage bounds a member's message (the bus's payload limit).
const MaxMessage = 8 << 20

// Timing is a failure detector's pace: its tick, and the protocol's
// periods in ticks.
type Timing struct {
	Tick     time.Duration
	Protocol Config
}

// Presets are the timings `mycel node --failure-detection` offers, as
// memberlist offers LAN, WAN and local configurations
// (docs/operations.md has the trade-offs).
var Presets = map[string]Timing{
	// lan: nodes on one network. One probe every 160 ms (80 ms, or what
	// the measured round trips ask, to answer); a dead node is suspected
	// within about 0.3 s and declared dead 0.2–1 s later, sooner the more
	// members confirm it.
	"lan": {Tick: 20 * time.Millisecond, Protocol: Config{ProbeTimeout: 4, ProbePeriod: 8, IndirectProbes: 3,
		SuspicionMin: 10, SuspicionMax: 50, Confirmations: 2, MaxHealth: 8, GossipFanout: 8, Retransmit: 6}},
	// wan: nodes across regions or clouds: probes every second, half a
	// second (or what the measured round trips ask) to answer, suspicions
	// of 2–10 s.
	"wan": {Tick: 50 * time.Millisecond, Protocol: Config{ProbeTimeout: 10, ProbePeriod: 20, IndirectProbes: 3,
		SuspicionMin: 40, SuspicionMax: 200, Confirmations: 3, MaxHealth: 8, GossipFanout: 8, Retransmit: 8}},
	// local: nodes on one machine (tests, demos): twice as fast as lan.
	"local": {Tick: 10 * time.Millisecond, Protocol: Config{ProbeTimeout: 5, ProbePeriod: 10, IndirectProbes: 3,
		SuspicionMin: 10, SuspicionMax: 50, Confirmations: 2, MaxHealth: 8, GossipFanout: 8, Retransmit: 6}},
}

// DefaultPreset is the preset a node uses unless told otherwise.
const DefaultPreset = "lan"

// ServiceConfig configures a Service.
type ServiceConfig struct {
	Conn bus.Conn
	// Key signs this node's messages; Self is its peer ID.
	Key  crypto.PrivKey
	Self string
	// Record returns this node's current signed node record, which
	// announcements carry.
	Record func() []byte
	// Verify checks a peer's signed node record and returns it decoded; a
	// peer is known once its record verified.
	Verify func(peerID string, record []byte) (*noderecord.Record, error)
	// Tick is the protocol's tick; zero means the default preset's.
	Tick time.Duration
	// Protocol is the timing in ticks; zero means the default preset's.
	Protocol Config
	// Rejected counts dropped messages by reason.
	Rejected *prometheus.CounterVec
	// Events, if set, counts membership events by kind (NewEventCounter).
	Events *prometheus.CounterVec
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Peer is what this node knows about another.
type Peer struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	State    string    `json:"state"`
	LastSeen time.Time `json:"lastSeen,omitzero"`
	// RTT is the smoothed round-trip time of direct probes (0: none yet).
	RTT time.Duration `json:"rtt,omitempty"`
}

// peer is what the service keeps about a verified member.
type peer struct {
	Peer
	rttVar time.Duration      // the RTT's mean deviation
	record *noderecord.Record // the newest verified record
}

// The smoothed RTT and its deviation are kept as TCP keeps them (RFC
// 6298), and so is the timeout derived from them: SRTT + 4·RTTVAR.
const (
	rttWeight    = 0.125
	rttVarWeight = 0.25
)

// Service runs the SWIM core over the bus, learns members from signed
// announcements, and opens every message with an envelope.Opener whose
// known senders are the verified members.
type Service struct {
	cfg   ServiceConfig
	log   *slog.Logger
	swim  *bus.Endpoint // SWIM messages, from verified members only
	hello *bus.Endpoint // announcements: the record inside proves membership

	// announcement schedule (Tick's and AnnounceSoon's, under mu): at
	// once, then backing off to announceEvery.
	nextAnnounce time.Time
	backoff      time.Duration

	mu     sync.Mutex
	ml     *Memberlist
	peers  map[string]*peer     // verified members
	dead   map[string]time.Time // members dead or gone, since when
	pinged map[uint64]pingSent  // direct probes in flight, by sequence
	subs   []func(Event)        // see Subscribe
}

type pingSent struct {
	to string
	at time.Time
}

// NewService returns a stopped service.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Conn == nil || cfg.Key == nil || cfg.Self == "" || cfg.Record == nil || cfg.Verify == nil {
		return nil, errors.New("membership: Conn, Key, Self, Record and Verify are required")
	}
	if cfg.Tick == 0 {
		cfg.Tick = Presets[DefaultPreset].Tick
	}
	if cfg.Protocol == (Config{}) {
		cfg.Protocol = Presets[DefaultPreset].Protocol
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, log: cfg.Logger, peers: map[string]*peer{}, dead: map[string]time.Time{}, pinged: map[uint64]pingSent{}}
	s.swim = &bus.Endpoint{Conn: cfg.Conn, Key: cfg.Key, Now: cfg.Now,
		Opener: &envelope.Opener{Known: s.Known, Rejected: cfg.Rejected, MaxSize: MaxMessage, Now: cfg.Now}}
	s.hello = &bus.Endpoint{Conn: cfg.Conn, Key: cfg.Key, Now: cfg.Now,
		Opener: &envelope.Opener{Known: func(libp2ppeer.ID) bool { return true }, Rejected: cfg.Rejected, Now: cfg.Now}}
	s.backoff = firstAnnounceBackoff
	s.ml = New(cfg.Self, cfg.Protocol, transport{s}, uint64(cfg.Now().UnixNano()))
	return s, nil
}

// NewEventCounter returns the counter ServiceConfig.Events expects,
// registered with reg.
func NewEventCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mycel_membership_events_total",
		Help: "Membership events this node observed, by kind (NodeJoined, NodeSuspect, NodeAlive, NodeDead, NodeDeadConfirmed, NodeLeft).",
	}, []string{"event"})
	return c, reg.Register(c)
}

// Known reports whether id is a verified member (or this node): the test
// every protocol's envelope.Opener applies to senders.
func (s *Service) Known(id libp2ppeer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.peers[id.String()]
	return ok || id.String() == s.cfg.Self
}

// Subscribe registers fn to receive every membership event, in order, from
// the service's goroutine and under no lock. fn must not block; call
// Subscribe before Run.
func (s *Service) Subscribe(fn func(Event)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, fn)
}

type transport struct{ s *Service }

// Send is called with s.mu held.
func (t transport) Send(to string, m Message) {
	now := t.s.cfg.Now()
	if _, again := t.s.pinged[m.Seq]; m.Kind == Ping && !again {
		// A second ping of a probe keeps the first one's time: the round
		// trip measured is the one the probe waited for.
		t.s.pinged[m.Seq] = pingSent{to: to, at: now}
	}
	if err := t.s.swim.Publish(fmt.Sprintf(subjectSWIMF, to), TypeSWIM, m); err != nil {
		t.s.log.Debug("swim send", "to", to, "err", err)
	}
}

// Serve subscribes to announcements and SWIM messages until stop is
// called. Run serves and ticks; tests drive Serve and Tick themselves.
func (s *Service) Serve() (stop func(), err error) {
	var subs []bus.Subscription
	unsubscribe := func() {
		for _, sub := range subs {
			sub.Unsubscribe()
		}
	}
	for _, h := range []struct {
		ep      *bus.Endpoint
		subject string
		fn      bus.Handler
	}{
		{s.hello, SubjectAnnounce, s.onAnnounce},
		{s.hello, fmt.Sprintf(subjectDirectF, s.cfg.Self), s.onAnnounce},
		{s.swim, fmt.Sprintf(subjectSWIMF, s.cfg.Self), s.onSWIM},
	} {
		sub, err := h.ep.Handle(h.subject, h.fn)
		if err != nil {
			unsubscribe()
			return nil, fmt.Errorf("membership: subscribe %s: %w", h.subject, err)
		}
		subs = append(subs, sub)
	}
	return unsubscribe, nil
}

// Run runs the protocol, a Tick every ServiceConfig.Tick, until ctx is
// done, then announces that this node leaves.
func (s *Service) Run(ctx context.Context) error {
	stop, err := s.Serve()
	if err != nil {
		return err
	}
	defer stop()
	tick := time.NewTicker(s.cfg.Tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Leave()
			s.cfg.Conn.Flush()
			return nil
		case <-tick.C:
			s.Tick()
		}
	}
}

// Tick advances the protocol by one tick: it announces this node when due
// (at once, then backing off to every 10 s: the first announcements may go
// out before the bus has its routes), probes, and reports what changed.
func (s *Service) Tick() {
	now := s.cfg.Now()
	s.mu.Lock()
	due := !now.Before(s.nextAnnounce)
	if due {
		s.nextAnnounce, s.backoff = now.Add(s.backoff), min(2*s.backoff, announceEvery)
	}
	s.mu.Unlock()
	if due {
		s.announce(SubjectAnnounce)
	}
	s.mu.Lock()
	s.ml.Tick()
	for seq, p := range s.pinged {
		if now.Sub(p.at) > time.Minute {
			delete(s.pinged, seq) // never acked
		}
	}
	events := s.observe()
	s.mu.Unlock()
	s.report(events)
}

// AnnounceSoon starts the announcement schedule again (at the next tick,
// then backing off): for when the bus reaches servers it did not (a
// partition healed), whose nodes may hold this one dead.
func (s *Service) AnnounceSoon() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextAnnounce, s.backoff = time.Time{}, firstAnnounceBackoff
}

// Leave tells the live members that this node leaves on purpose.
func (s *Service) Leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ml.Leave()
	for _, id := range s.ml.live() {
		s.ml.send(id, Message{Kind: Ack}) // carries the Left gossip
	}
}

func (s *Service) announce(subject string) {
	if err := s.hello.Publish(subject, TypeAnnounce, json.RawMessage(s.cfg.Record())); err != nil {
		s.log.Debug("announce", "err", err)
	}
}

func (s *Service) onAnnounce(e *envelope.Envelope, refused error) (string, any) {
	if refused != nil || e.Type != TypeAnnounce || e.Sender == s.cfg.Self {
		return "", nil
	}
	rec, err := s.cfg.Verify(e.Sender, e.Payload)
	if err != nil {
		if s.cfg.Rejected != nil {
			s.cfg.Rejected.WithLabelValues("unknown_sender").Inc()
		}
		s.log.Warn("rejected an announcement", "peer", e.Sender, "err", err)
		return "", nil
	}
	s.mu.Lock()
	p, known := s.peers[e.Sender]
	if !known {
		p = &peer{Peer: Peer{ID: e.Sender}}
		s.peers[e.Sender] = p
	}
	if p.record == nil || rec.Seq >= p.record.Seq {
		p.record = rec
	}
	p.Name, p.LastSeen = rec.Name, s.cfg.Now()
	if _, member := s.ml.State(e.Sender); member {
		s.ml.Heard(e.Sender)
	} else {
		s.ml.Add(e.Sender)
	}
	events := s.observe()
	s.mu.Unlock()
	if !known {
		// Introduce ourselves to the newcomer directly.
		s.announce(fmt.Sprintf(subjectDirectF, e.Sender))
	}
	s.report(events)
	return "", nil
}

func (s *Service) onSWIM(e *envelope.Envelope, refused error) (string, any) {
	var msg Message
	if refused != nil || bus.Decode(e, TypeSWIM, &msg) != nil {
		return "", nil
	}
	s.mu.Lock()
	now := s.cfg.Now()
	p := s.peers[e.Sender]
	if p != nil {
		p.LastSeen = now
	}
	if sent, ok := s.pinged[msg.Seq]; ok && msg.Kind == Ack && sent.to == e.Sender && msg.Target == e.Sender {
		delete(s.pinged, msg.Seq)
		if p != nil {
			s.sampleRTT(p, now.Sub(sent.at))
		}
	}
	s.ml.Receive(e.Sender, msg)
	events := s.observe()
	s.mu.Unlock()
	s.report(events)
	return "", nil
}

// sampleRTT folds a round trip into p's estimates and gives the core the
// probe timeout they ask for. Called with s.mu held.
func (s *Service) sampleRTT(p *peer, sample time.Duration) {
	if p.RTT == 0 {
		p.RTT, p.rttVar = sample, sample/2
	} else {
		dev := p.RTT - sample
		if dev < 0 {
			dev = -dev
		}
		p.rttVar += time.Duration(rttVarWeight * float64(dev-p.rttVar))
		p.RTT += time.Duration(rttWeight * float64(sample-p.RTT))
	}
	rto := p.RTT + 4*p.rttVar
	s.ml.SetRTT(p.ID, int((rto+s.cfg.Tick-1)/s.cfg.Tick))
}

// observe takes the core's events, stamps them and notes deaths. Called
// with s.mu held.
func (s *Service) observe() []Event {
	events := s.ml.Events()
	now := s.cfg.Now()
	for i, e := range events {
		events[i].At = now
		switch e.Kind {
		case NodeDead, NodeLeft:
			s.dead[e.Member] = now
		case NodeJoined:
			delete(s.dead, e.Member)
		}
	}
	return events
}

// report logs, counts and delivers events, under no lock.
func (s *Service) report(events []Event) {
	if len(events) == 0 {
		return
	}
	s.mu.Lock()
	subs := s.subs
	s.mu.Unlock()
	for _, e := range events {
		attrs := []any{"event", e.Kind, "peer", e.Member, "name", s.Name(e.Member), "incarnation", e.Incarnation}
		if e.Kind == NodeDead {
			attrs = append(attrs, "confirmed", e.Confirmed)
		}
		s.log.Info("membership", attrs...)
		if s.cfg.Events != nil {
			s.cfg.Events.WithLabelValues(string(e.Kind)).Inc()
		}
		for _, fn := range subs {
			fn(e)
		}
	}
}

// Name is a member's node name, or "" if it is not known.
func (s *Service) Name(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.peers[id]; p != nil {
		return p.Name
	}
	return ""
}

// Live lists the peer IDs of members believed alive (suspects included:
// a suspicion is not a death), self included, sorted.
func (s *Service) Live() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append(s.ml.live(), s.cfg.Self)
	sort.Strings(out)
	return out
}

// IsLive reports whether id is this node or a member believed alive
// (suspects included), without listing them all as Live does.
func (s *Service) IsLive(id string) bool {
	if id == s.cfg.Self {
		return true
	}
	st, ok := s.State(id)
	return ok && (st == Alive || st == Suspect)
}

// State is what this node believes about member id, and whether it has
// met id at all.
func (s *Service) State(id string) (State, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ml.State(id)
}

// Death is when member id was declared dead (or left), if it is dead or
// gone now, and whether that is confident (Memberlist.Confirmed: it left,
// or independent members confirmed the suspicion).
func (s *Service) Death(id string) (at time.Time, confirmed, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok = s.dead[id]
	return at, ok && s.ml.Confirmed(id), ok
}

// Health is this node's local health score (Memberlist.Health): 0 when
// its probes succeed, higher when it has reason to think itself slow.
func (s *Service) Health() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ml.Health()
}

// RTT is the smoothed round-trip time of direct probes to member id (0 if
// none was answered yet).
func (s *Service) RTT(id string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.peers[id]; p != nil {
		return p.RTT
	}
	return 0
}

// Record is the newest verified node record of member id (nil if none).
// Callers must not modify it.
func (s *Service) Record(id string) *noderecord.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.peers[id]; p != nil {
		return p.record
	}
	return nil
}

// Peers lists every member this node knows of, with its state.
func (s *Service) Peers() []Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Peer
	for _, id := range s.ml.Members() {
		p := Peer{ID: id, State: "Unknown"}
		if k := s.peers[id]; k != nil {
			p = k.Peer
		}
		if st, ok := s.ml.State(id); ok {
			p.State = st.String()
		}
		out = append(out, p)
	}
	return out
}
