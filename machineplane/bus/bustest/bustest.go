// Package bustest is an in-memory bus for protocol tests: each node gets a
// bus.Conn, links between nodes can be cut and healed, and delivery is
// driven by the test, so protocol scripts are deterministic.
//
// Publish queues a message; Deliver hands queued messages to subscribers
// in order, one at a time, until none is left (what handlers publish
// meanwhile is delivered too). Request is synchronous: the one subscriber
// of the subject answers in the requester's goroutine. A message or request
// across a cut link is lost (a request fails at once, as if it had timed
// out).
package bustest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/mycelfabric/mycel/machineplane/bus"
)

// ErrCut is what a request across a cut link fails with.
var ErrCut = errors.New("bustest: link cut")

// Bus is an in-memory bus. It is safe for concurrent use, but delivery
// order is only deterministic when one goroutine drives it.
type Bus struct {
	mu      sync.Mutex
	subs    []*sub
	queue   []queued
	cut     map[[2]string]bool
	replies map[string]chan []byte
	inbox   int
	// Trace, if set, sees every message delivered: who sent it to whom,
	// on which subject, and whether it is a reply.
	Trace func(from, to, subject string, data []byte)
}

type sub struct {
	node, subject string
	fn            func(bus.Msg)
	closed        bool
}

type queued struct {
	from string
	msg  bus.Msg
}

// New returns an empty bus.
func New() *Bus {
	return &Bus{cut: map[[2]string]bool{}, replies: map[string]chan []byte{}}
}

// Conn is node's connection to the bus.
func (b *Bus) Conn(node string) bus.Conn { return &conn{b: b, node: node} }

// Cut drops everything between nodes x and y, both ways.
func (b *Bus) Cut(x, y string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cut[[2]string{x, y}], b.cut[[2]string{y, x}] = true, true
}

// Heal restores every link.
func (b *Bus) Heal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.cut)
}

// Deliver hands every queued message to its subscribers and returns how
// many deliveries it made.
func (b *Bus) Deliver() int {
	n := 0
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.mu.Unlock()
			return n
		}
		q := b.queue[0]
		b.queue = b.queue[1:]
		targets := b.matching(q.from, q.msg.Subject)
		b.mu.Unlock()
		for _, s := range targets {
			b.trace(q.from, s.node, q.msg)
			s.fn(q.msg)
			n++
		}
	}
}

func (b *Bus) trace(from, to string, m bus.Msg) {
	if b.Trace != nil {
		b.Trace(from, to, m.Subject, m.Data)
	}
}

// matching lists the open subscriptions on subject that from can reach.
// Called with b.mu held.
func (b *Bus) matching(from, subject string) []*sub {
	var out []*sub
	for _, s := range b.subs {
		if !s.closed && s.subject == subject && !b.cut[[2]string{from, s.node}] {
			out = append(out, s)
		}
	}
	return out
}

type conn struct {
	b    *Bus
	node string
}

func (c *conn) Publish(subject string, data []byte) error {
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if ch, ok := b.replies[subject]; ok {
		select {
		case ch <- append([]byte(nil), data...):
		default:
		}
		return nil
	}
	b.queue = append(b.queue, queued{from: c.node, msg: bus.Msg{Subject: subject, Data: append([]byte(nil), data...)}})
	return nil
}

func (c *conn) Subscribe(subject string, fn func(bus.Msg)) (bus.Subscription, error) {
	s := &sub{node: c.node, subject: subject, fn: fn}
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	c.b.subs = append(c.b.subs, s)
	return unsubscriber{c.b, s}, nil
}

func (c *conn) Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	b := c.b
	b.mu.Lock()
	var target *sub
	for _, s := range b.subs {
		if !s.closed && s.subject == subject {
			target = s
			break
		}
	}
	if target == nil {
		b.mu.Unlock()
		return nil, fmt.Errorf("%w on %s", bus.ErrNoResponders, subject)
	}
	if b.cut[[2]string{c.node, target.node}] {
		b.mu.Unlock()
		return nil, fmt.Errorf("%s to %s: %w", c.node, target.node, ErrCut)
	}
	b.inbox++
	reply := fmt.Sprintf("_INBOX.%s.%d", c.node, b.inbox)
	ch := make(chan []byte, 1)
	b.replies[reply] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.replies, reply)
		b.mu.Unlock()
	}()
	m := bus.Msg{Subject: subject, Reply: reply, Data: append([]byte(nil), data...)}
	b.trace(c.node, target.node, m)
	target.fn(m)
	select {
	case out := <-ch:
		b.trace(target.node, c.node, bus.Msg{Subject: reply, Data: out})
		return out, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	default:
		return nil, fmt.Errorf("bustest: %s did not answer on %s", target.node, strings.TrimSpace(subject))
	}
}

// Flush delivers nothing: delivery is the test's (Deliver).
func (c *conn) Flush() error { return nil }

type unsubscriber struct {
	b *Bus
	s *sub
}

func (u unsubscriber) Unsubscribe() error {
	u.b.mu.Lock()
	defer u.b.mu.Unlock()
	u.s.closed = true
	return nil
}
