package host

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
)

// Listener is a net.Listener whose connections are libp2p streams handed to
// it (ServeStream) and in-process pipes (Pipe), so that one http.Server
// answers the node itself and the other members of the fabric alike.
type Listener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// NewListener returns an open Listener.
func NewListener() *Listener {
	return &Listener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept waits for the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept; connections already accepted stay open.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is a placeholder: the listener has no network address.
func (l *Listener) Addr() net.Addr { return pipeAddr{} }

// Pipe returns the client end of a connection whose server end Accept
// returns.
func (l *Listener) Pipe(ctx context.Context) (net.Conn, error) {
	client, server := net.Pipe()
	if err := l.hand(ctx, server); err != nil {
		client.Close()
		return nil, err
	}
	return client, nil
}

// ServeStream hands s to Accept as a net.Conn and returns once the server
// has closed it or ctx is done (then it resets s), so it fits Serve's fn.
func (l *Listener) ServeStream(ctx context.Context, s network.Stream) {
	c := &streamConn{Stream: s, closed: make(chan struct{})}
	if err := l.hand(ctx, c); err != nil {
		s.Reset()
		return
	}
	select {
	case <-c.closed:
	case <-ctx.Done():
		s.Reset()
	}
}

func (l *Listener) hand(ctx context.Context, c net.Conn) error {
	select {
	case l.conns <- c:
		return nil
	case <-l.done:
		c.Close()
		return net.ErrClosed
	case <-ctx.Done():
		c.Close()
		return ctx.Err()
	}
}

// StreamConn makes a libp2p stream a net.Conn, for HTTP clients.
func StreamConn(s network.Stream) net.Conn {
	return &streamConn{Stream: s, closed: make(chan struct{})}
}

// streamConn is a libp2p stream as a net.Conn; closed closes with it.
type streamConn struct {
	network.Stream
	once   sync.Once
	closed chan struct{}
}

func (c *streamConn) Close() error {
	err := c.Stream.Close()
	c.once.Do(func() { close(c.closed) })
	if errors.Is(err, network.ErrReset) {
		return nil
	}
	return err
}

func (c *streamConn) LocalAddr() net.Addr  { return peerAddr(c.Stream.Conn().LocalPeer().String()) }
func (c *streamConn) RemoteAddr() net.Addr { return peerAddr(c.Stream.Conn().RemotePeer().String()) }

// peerAddr names a libp2p peer as a net.Addr.
type peerAddr string

func (a peerAddr) Network() string { return "libp2p" }
func (a peerAddr) String() string  { return string(a) }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
