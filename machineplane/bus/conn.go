package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Conn is the part of a bus connection the protocols use: the node's NATS
// connection (Bus.Conn) or bustest's in-memory bus.
type Conn interface {
	// Publish sends data on subject without waiting for delivery;
	// delivery may fail silently.
	Publish(subject string, data []byte) error
	// Subscribe delivers the messages on subject to fn, one at a time and
	// in order, until the subscription is closed.
	Subscribe(subject string, fn func(Msg)) (Subscription, error)
	// Request sends data on subject and returns the first reply, or an
	// error when none comes before ctx ends (ErrNoResponders at once when
	// nothing listens).
	Request(ctx context.Context, subject string, data []byte) ([]byte, error)
	// Flush returns once everything published so far has reached the bus.
	Flush() error
}

// Msg is a received message. A request carries the subject its reply goes
// to (publish the reply there).
type Msg struct {
	Subject string
	Reply   string
	Data    []byte
}

// Subscription ends with Unsubscribe.
type Subscription interface {
	Unsubscribe() error
}

// ErrNoResponders means a request found nothing listening on its subject.
var ErrNoResponders = errors.New("bus: no responders")

// natsConn is a NATS connection as a Conn.
type natsConn struct{ nc *nats.Conn }

// NATS adapts a NATS connection to Conn.
func NATS(nc *nats.Conn) Conn { return natsConn{nc} }

func (c natsConn) Publish(subject string, data []byte) error { return c.nc.Publish(subject, data) }

func (c natsConn) Subscribe(subject string, fn func(Msg)) (Subscription, error) {
	return c.nc.Subscribe(subject, func(m *nats.Msg) { fn(Msg{Subject: m.Subject, Reply: m.Reply, Data: m.Data}) })
}

func (c natsConn) Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	m, err := c.nc.RequestWithContext(ctx, subject, data)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("%w on %s", ErrNoResponders, subject)
	}
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}

func (c natsConn) Flush() error { return c.nc.Flush() }
