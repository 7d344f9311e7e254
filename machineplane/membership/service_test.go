package membership

import (
	"crypto/sha256"
	"encoding/json"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/mycelfabric/mycel/machineplane/bus/bustest"
	"github.com/mycelfabric/mycel/machineplane/noderecord"
)

type seeded [32]byte

func (s *seeded) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = s[i%32]
	}
	return len(p), nil
}

// TestServiceDeliversTypedEvents runs three services over an in-memory bus
// with a fake clock (each delivery takes a millisecond): they meet by
// announcement and subscribers get NodeJoined with the member and the
// time; direct probes measure a round-trip time; a member that goes
// silent is declared dead, and Death says when and that a and b both
// confirmed it.
func TestServiceDeliversTypedEvents(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	b := bustest.New()
	b.Trace = func(string, string, string, []byte) { now = now.Add(time.Millisecond) }
	names := map[string]string{}
	services := map[string]*Service{}
	events := map[string][]Event{}
	var ids []string
	for _, name := range []string{"a", "b", "c"} {
		seed := seeded(sha256.Sum256([]byte(name)))
		key, _, _ := crypto.GenerateEd25519Key(&seed)
		id, _ := libp2ppeer.IDFromPrivateKey(key)
		self := id.String()
		names[self] = name
		ids = append(ids, self)
		rec, _ := json.Marshal(noderecord.Record{PeerID: self, Name: name, Seq: 1})
		s, err := NewService(ServiceConfig{Conn: b.Conn(self), Key: key, Self: self, Now: clock,
			Record: func() []byte { return rec },
			Verify: func(id string, data []byte) (*noderecord.Record, error) {
				var r noderecord.Record
				err := json.Unmarshal(data, &r)
				return &r, err
			}})
		if err != nil {
			t.Fatal(err)
		}
		s.Subscribe(func(e Event) { events[name] = append(events[name], e) })
		if _, err := s.Serve(); err != nil {
			t.Fatal(err)
		}
		services[name] = s
	}
	run := func(ticks int, who ...string) {
		for range ticks {
			now = now.Add(20 * time.Millisecond)
			for _, n := range who {
				services[n].Tick()
			}
			b.Deliver()
		}
	}
	run(50, "a", "b", "c")
	for _, n := range []string{"a", "b", "c"} {
		if live := services[n].Live(); len(live) != 3 {
			t.Fatalf("%s sees %d live members", n, len(live))
		}
		joined := map[string]bool{}
		for _, e := range events[n] {
			if e.Kind == NodeJoined && !e.At.IsZero() {
				joined[names[e.Member]] = true
			}
		}
		if len(joined) != 2 {
			t.Errorf("%s got NodeJoined for %v, want the two others", n, joined)
		}
	}
	if rtt := services["a"].RTT(ids[1]); rtt <= 0 || rtt > 10*time.Millisecond {
		t.Errorf("a's RTT to b: %s", rtt)
	}

	// c goes silent.
	b.Cut(ids[0], ids[2])
	b.Cut(ids[1], ids[2])
	silentAt := now
	run(100, "a", "b")
	dead, confirmed, ok := services["a"].Death(ids[2])
	if st, _ := services["a"].State(ids[2]); st != Dead || !ok || !confirmed || dead.Before(silentAt) {
		t.Fatalf("a holds c %s (dead since %v, confirmed %v, %v)", st, dead, confirmed, ok)
	}
	var last Event
	for _, e := range events["a"] {
		if e.Member == ids[2] {
			last = e
		}
	}
	if last.Kind != NodeDead || !last.At.Equal(dead) || !last.Confirmed {
		t.Errorf("a's last event about c: %+v, want a confirmed NodeDead at %v", last, dead)
	}
	if _, _, ok := services["a"].Death(ids[1]); ok {
		t.Error("b, alive, has a Death")
	}
	if a := services["a"]; a.IsLive(ids[2]) || !a.IsLive(ids[1]) || !a.IsLive(ids[0]) {
		t.Errorf("a's IsLive: c %v, b %v, itself %v", a.IsLive(ids[2]), a.IsLive(ids[1]), a.IsLive(ids[0]))
	}

	// c runs on, cut off long enough that its announcements have backed
	// off to every 10 s; the links heal, and c, told that its bus reaches
	// more servers, announces at once: the others re-admit it within a
	// few ticks instead of at its next announcement.
	run(600, "a", "b", "c")
	b.Heal()
	services["c"].AnnounceSoon()
	run(10, "a", "b", "c")
	for _, n := range []string{"a", "b"} {
		if st, _ := services[n].State(ids[2]); st != Alive {
			t.Errorf("%s holds c %s 200 ms after the heal", n, st)
		}
	}
}
