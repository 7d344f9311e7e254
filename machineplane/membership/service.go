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
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

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
)

// MaxMessage bounds a member's message (the bus's payload limit).
const MaxMessage = 8 << 20

// DefaultBusConfig suits nodes on one LAN exchanging messages over the bus
// with a 20 ms tick: a dead node is suspected within ~0.2 s and declared
// dead about 0.4 s later.
var DefaultBusConfig = Config{ProbeTimeout: 3, ProbePeriod: 8, IndirectProbes: 3, SuspicionTicks: 20, GossipFanout: 8, Retransmit: 6}

// ServiceConfig configures a Service.
type ServiceConfig struct {
	Conn *nats.Conn
	// Key signs this node's messages; Self is its peer ID.
	Key  crypto.PrivKey
	Self string
	// Record returns this node's current signed node record, which
	// announcements carry.
	Record func() []byte
	// Verify checks a peer's signed node record and returns the node name
	// it declares; a peer is known once its record verified.
	Verify func(peerID string, record []byte) (name string, err error)
	// Tick is the protocol's tick; zero means 20 ms.
	Tick time.Duration
	// Protocol is the timing in ticks; zero means DefaultBusConfig.
	Protocol Config
	// OnChange, if set, is called (not under any lock) after the set of
	// live members changed.
	OnChange func()
	// Rejected counts dropped messages by reason.
	Rejected *prometheus.CounterVec
	// Events, if set, counts membership events by kind (NewEventCounter).
	Events *prometheus.CounterVec
	Logger *slog.Logger
}

// Peer is what this node knows about another.
type Peer struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	State    string    `json:"state"`
	LastSeen time.Time `json:"lastSeen,omitzero"`
}

// Service runs the SWIM core over the bus, learns members from signed
// announcements, and opens every message with an envelope.Opener whose
// known senders are the verified members.
type Service struct {
	cfg    ServiceConfig
	log    *slog.Logger
	opener *envelope.Opener // SWIM and every other member-to-member message
	hello  *envelope.Opener // announcements: the record inside proves membership

	mu    sync.Mutex
	ml    *Memberlist
	peers map[string]*Peer // verified members
}

// NewService returns a stopped service.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Conn == nil || cfg.Key == nil || cfg.Self == "" || cfg.Record == nil || cfg.Verify == nil {
		return nil, errors.New("membership: Conn, Key, Self, Record and Verify are required")
	}
	if cfg.Tick == 0 {
		cfg.Tick = 20 * time.Millisecond
	}
	if cfg.Protocol == (Config{}) {
		cfg.Protocol = DefaultBusConfig
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, log: cfg.Logger, peers: map[string]*Peer{}}
	s.opener = &envelope.Opener{Known: s.known, Rejected: cfg.Rejected, MaxSize: MaxMessage}
	s.hello = &envelope.Opener{Known: func(peer.ID) bool { return true }, Rejected: cfg.Rejected}
	s.ml = New(cfg.Self, cfg.Protocol, transport{s}, uint64(time.Now().UnixNano()))
	return s, nil
}

// NewEventCounter returns the counter ServiceConfig.Events expects,
// registered with reg.
func NewEventCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mycel_membership_events_total",
		Help: "Membership events this node observed, by kind (NodeJoined, NodeSuspect, NodeDead, NodeLeft).",
	}, []string{"event"})
	return c, reg.Register(c)
}

// Opener checks messages from members; other machine-plane protocols share it.
func (s *Service) Opener() *envelope.Opener { return s.opener }

func (s *Service) known(id peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.peers[id.String()]
	return ok || id.String() == s.cfg.Self
}

type transport struct{ s *Service }

// Send is called with s.mu held.
func (t transport) Send(to string, m Message) {
	payload, err := json.Marshal(m)
	if err == nil {
		var data []byte
		if data, err = envelope.Seal(t.s.cfg.Key, TypeSWIM, payload, time.Now()); err == nil {
			err = t.s.cfg.Conn.Publish(fmt.Sprintf(subjectSWIMF, to), data)
		}
	}
	if err != nil {
		t.s.log.Debug("swim send", "to", to, "err", err)
	}
}

// Run runs the protocol until ctx is done, then announces that this node
// leaves.
func (s *Service) Run(ctx context.Context) error {
	subs := []struct {
		subject string
		fn      nats.MsgHandler
	}{
		{SubjectAnnounce, s.onAnnounce},
		{fmt.Sprintf(subjectDirectF, s.cfg.Self), s.onAnnounce},
		{fmt.Sprintf(subjectSWIMF, s.cfg.Self), s.onSWIM},
	}
	for _, sub := range subs {
		ns, err := s.cfg.Conn.Subscribe(sub.subject, sub.fn)
		if err != nil {
			return fmt.Errorf("membership: subscribe %s: %w", sub.subject, err)
		}
		defer ns.Unsubscribe()
	}
	tick := time.NewTicker(s.cfg.Tick)
	defer tick.Stop()
	// Announce at once, then back off to the steady period: the first
	// announcements may go out before the bus has its routes.
	next, backoff := time.Now(), 250*time.Millisecond
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.ml.Leave()
			for _, id := range s.ml.live() {
				s.ml.send(id, Message{Kind: Ack}) // carries the Left gossip
			}
			s.mu.Unlock()
			s.cfg.Conn.Flush()
			return nil
		case now := <-tick.C:
			if !now.Before(next) {
				s.announce(SubjectAnnounce)
				next, backoff = now.Add(backoff), min(2*backoff, announceEvery)
			}
			s.mu.Lock()
			s.ml.Tick()
			events := s.ml.Events()
			s.mu.Unlock()
			s.report(events)
		}
	}
}

func (s *Service) announce(subject string) {
	data, err := envelope.Seal(s.cfg.Key, TypeAnnounce, s.cfg.Record(), time.Now())
	if err == nil {
		err = s.cfg.Conn.Publish(subject, data)
	}
	if err != nil {
		s.log.Debug("announce", "err", err)
	}
}

func (s *Service) onAnnounce(m *nats.Msg) {
	e, err := s.hello.Open(m.Data)
	if err != nil || e.Type != TypeAnnounce || e.Sender == s.cfg.Self {
		return
	}
	name, err := s.cfg.Verify(e.Sender, e.Payload)
	if err != nil {
		if s.cfg.Rejected != nil {
			s.cfg.Rejected.WithLabelValues("unknown_sender").Inc()
		}
		s.log.Warn("rejected an announcement", "peer", e.Sender, "err", err)
		return
	}
	s.mu.Lock()
	p, known := s.peers[e.Sender]
	if !known {
		p = &Peer{ID: e.Sender}
		s.peers[e.Sender] = p
	}
	p.Name, p.LastSeen = name, time.Now()
	if _, member := s.ml.State(e.Sender); member {
		s.ml.Heard(e.Sender)
	} else {
		s.ml.Add(e.Sender)
	}
	events := s.ml.Events()
	s.mu.Unlock()
	if !known {
		// Introduce ourselves to the newcomer directly.
		s.announce(fmt.Sprintf(subjectDirectF, e.Sender))
	}
	s.report(events)
}

func (s *Service) onSWIM(m *nats.Msg) {
	e, err := s.opener.Open(m.Data)
	if err != nil || e.Type != TypeSWIM {
		return
	}
	var msg Message
	if err := json.Unmarshal(e.Payload, &msg); err != nil {
		return
	}
	s.mu.Lock()
	if p := s.peers[e.Sender]; p != nil {
		p.LastSeen = time.Now()
	}
	s.ml.Receive(e.Sender, msg)
	events := s.ml.Events()
	s.mu.Unlock()
	s.report(events)
}

func (s *Service) report(events []Event) {
	if len(events) == 0 {
		return
	}
	for _, e := range events {
		s.log.Info("membership", "event", e.Kind, "peer", e.ID, "name", s.Name(e.ID))
		if s.cfg.Events != nil {
			s.cfg.Events.WithLabelValues(e.Kind).Inc()
		}
	}
	if s.cfg.OnChange != nil {
		s.cfg.OnChange()
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

// Peers lists every member this node knows of, with its state.
func (s *Service) Peers() []Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Peer
	for _, id := range s.ml.Members() {
		p := Peer{ID: id, State: "Unknown"}
		if k := s.peers[id]; k != nil {
			p = *k
		}
		if st, ok := s.ml.State(id); ok {
			p.State = st.String()
		}
		out = append(out, p)
	}
	return out
}
