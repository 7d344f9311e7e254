package membership

import (
	"encoding/json"
	"testing"
)

type discard struct{}

func (discard) Send(string, Message) {}

// FuzzReceive feeds arbitrary SWIM messages, as they arrive inside signed
// envelopes from members, to a member's protocol core: it never panics,
// never believes itself dead, and keeps ticking.
func FuzzReceive(f *testing.F) {
	for _, m := range []Message{
		{Kind: Ping, Seq: 1},
		{Kind: PingReq, Seq: 2, Target: "c"},
		{Kind: Ack, Seq: 1, Target: "b", Gossip: []Update{{ID: "self", State: Dead, Incarnation: 9}, {ID: "c", State: Suspect, Incarnation: 1 << 62}}},
	} {
		b, _ := json.Marshal(m)
		f.Add("b", b)
	}
	f.Add("self", []byte(`{"Kind":"ack","Gossip":[{"ID":"","State":7}]}`))
	f.Fuzz(func(t *testing.T, from string, data []byte) {
		var msg Message
		if json.Unmarshal(data, &msg) != nil {
			return
		}
		m := New("self", DefaultLANConfig(), discard{}, 1)
		m.Add("b")
		m.Receive(from, msg)
		for range 50 {
			m.Tick()
		}
		if st, ok := m.State("self"); ok {
			t.Fatalf("self is a member of its own view (%s)", st)
		}
		for _, id := range m.Members() {
			st, _ := m.State(id)
			_ = st.String() // as the status endpoint shows it
		}
		for _, e := range m.Events() {
			if e.Member == "self" {
				t.Fatalf("an event about self: %+v", e)
			}
		}
	})
}
