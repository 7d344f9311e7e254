// Package bus is the machine plane's message bus: every node embeds a NATS
// server and clusters it with its peers' (routes found through the DHT).
// Every client connection and every route is mTLS with node SVIDs, verified
// with go-spiffe; a client must hold an SVID of the trust domain, a route a
// node SVID. The node's own components talk through an in-process client
// (net.Pipe, no TLS), admitted by a token that never leaves the process.
//
// Small fabrics are one NATS cluster. docs/architecture.md describes how it
// grows past that (per-region hubs chosen by rendezvous hashing, leaf nodes,
// gateways).
package bus

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/mycelfabric/mycel/securityplane/tlsconf"
)

// ClusterName is the NATS cluster all nodes of a small fabric form.
const ClusterName = "mycel"

// MaxPayload bounds one bus message: room for the largest object the API
// accepts (3 MiB) inside a signed envelope, with room to spare.
const MaxPayload = 8 << 20

// Config configures a node's bus.
type Config struct {
	// Name is the server name (the node's peer ID).
	Name string
	// Host is the address the client and cluster ports listen on.
	Host string
	// ClientPort and ClusterPort: 0 picks free ports.
	ClientPort, ClusterPort int
	// Routes are peers' cluster URLs (nats-route://host:port); NATS gossip
	// finds the rest of the cluster from any one of them.
	Routes []string
	// SVID is the node's identity; Bundle verifies peers.
	SVID   x509svid.Source
	Bundle *x509bundle.Bundle
	// Logger; nil discards.
	Logger *slog.Logger
}

// Bus is a running embedded NATS server and the node's client of it.
type Bus struct {
	srv  *server.Server
	conn *nats.Conn
	log  *slog.Logger

	mu   sync.Mutex
	opts *server.Options // as started, with the routes added since
}

// spiffeAuth admits clients whose TLS peer certificate is an SVID the
// authorizer accepts (the handshake has verified it already; this is the
// authorization step, and it also guards the server against a
// misconfigured TLS setting). With local set, it also admits the node's
// own in-process client, which has no TLS (a net.Pipe inside the process)
// and presents local, a random token that never leaves the process: a
// connection over the network has TLS (the server requires it), so it can
// never take that path.
type spiffeAuth struct {
	bundle    *x509bundle.Bundle
	authorize tlsconfig.Authorizer
	local     string
}

func (a spiffeAuth) Check(c server.ClientAuthentication) bool {
	st := c.GetTLSConnectionState()
	if st == nil {
		addr := c.RemoteAddress()
		return a.local != "" && addr != nil && addr.Network() == "pipe" &&
			subtle.ConstantTimeCompare([]byte(c.GetOpts().Token), []byte(a.local)) == 1
	}
	if len(st.PeerCertificates) == 0 {
		return false
	}
	id, chains, err := x509svid.Verify(st.PeerCertificates, a.bundle)
	if err != nil {
		return false
	}
	return a.authorize(id, chains) == nil
}

// Start starts the server, waits until it accepts connections, and
// connects the node's own client.
func Start(cfg Config) (*Bus, error) {
	if cfg.SVID == nil || cfg.Bundle == nil || cfg.Name == "" {
		return nil, errors.New("bus: Name, SVID and Bundle are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	td := cfg.Bundle.TrustDomain()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	local := hex.EncodeToString(secret)
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       cfg.Host,
		Port:       portOrRandom(cfg.ClientPort),
		NoSigs:     true,
		MaxPayload: MaxPayload,
		TLSConfig:  tlsconf.Mutual(cfg.SVID, cfg.Bundle, tlsconf.MemberOf(td)),
		TLSTimeout: 5,
		// Clients authenticate by their SVID during the handshake; the
		// node's own in-process client by a token of this process.
		CustomClientAuthentication: &spiffeAuth{bundle: cfg.Bundle, authorize: tlsconf.MemberOf(td), local: local},
		Cluster: server.ClusterOpts{
			Name:       ClusterName,
			Host:       cfg.Host,
			Port:       portOrRandom(cfg.ClusterPort),
			TLSConfig:  tlsconf.Mutual(cfg.SVID, cfg.Bundle, tlsconf.Nodes(td)),
			TLSTimeout: 5,
			// Advertise the listening host (NATS adds the port): without
			// it, peers gossip this server's address as the source address
			// of its outgoing routes, which on a shared loopback or behind
			// NAT is not where it listens.
			Advertise: advertise(cfg.Host),
			// Routes learnt by gossip (to nodes not in Routes) are tried
			// once by default; one failed handshake would leave the mesh
			// without that link for good, and NATS does not forward between
			// routes. Keep trying every second for an hour, without
			// NATS's backoff (to 30 s): a route cut by a partition comes
			// back within a second or two of the heal, not half a minute.
			// A peer that returns later dials its own routes.
			ConnectRetries: 3600,
		},
		CustomRouterAuthentication: &spiffeAuth{bundle: cfg.Bundle, authorize: tlsconf.Nodes(td)},
	}
	routes, err := parseRoutes(cfg.Routes)
	if err != nil {
		return nil, err
	}
	opts.Routes = routes
	// The embedded server reports a port it cannot bind only by never
	// becoming ready; find out at once.
	for _, port := range []int{cfg.ClientPort, cfg.ClusterPort} {
		if port == 0 {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(port)))
		if err != nil {
			return nil, fmt.Errorf("bus: %w", err)
		}
		ln.Close()
	}
	srv, err := server.NewServer(opts.Clone())
	if err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	srv.SetLogger(natsLogger{cfg.Logger}, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("bus: the embedded NATS server did not start within 10s")
	}
	b := &Bus{srv: srv, log: cfg.Logger, opts: opts}
	// The node's own client is in process (net.Pipe): no TCP and no TLS
	// for what never leaves the process.
	conn, err := nats.Connect("",
		nats.InProcessServer(srv),
		nats.Token(local),
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
	)
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("bus: connect to own server: %w", err)
	}
	b.conn = conn
	return b, nil
}

// advertise is the cluster address to gossip: the host itself, unless it
// is a wildcard (then NATS's default, the source address peers see).
func advertise(host string) string {
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return ""
	}
	return host
}

func portOrRandom(p int) int {
	if p == 0 {
		return server.RANDOM_PORT
	}
	return p
}

// Conn is the node's client connection.
func (b *Bus) Conn() *nats.Conn { return b.conn }

// Client is the node's client connection as the protocols use it.
func (b *Bus) Client() Conn { return NATS(b.conn) }

// ClientURL is where clients connect (tls://host:port).
func (b *Bus) ClientURL() string { return b.srv.ClientURL() }

// ClusterURL is what other nodes put in their routes.
func (b *Bus) ClusterURL() string {
	a := b.srv.ClusterAddr()
	return "nats-route://" + net.JoinHostPort(a.IP.String(), strconv.Itoa(a.Port))
}

// Ports are the client and cluster ports the server listens on.
func (b *Bus) Ports() (client, cluster int) {
	if a, ok := b.srv.Addr().(*net.TCPAddr); ok {
		client = a.Port
	}
	return client, b.srv.ClusterAddr().Port
}

func parseRoutes(routes []string) ([]*url.URL, error) {
	var out []*url.URL
	for _, r := range routes {
		u, err := url.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("bus: route %q: %w", r, err)
		}
		out = append(out, u)
	}
	return out, nil
}

// AddRoutes routes the server to more peers' cluster URLs, as if they had
// been in Config.Routes (a node that started without reaching its
// bootstrap peers adds theirs once it does). Routes it has are skipped.
func (b *Bus) AddRoutes(routes []string) error {
	add, err := parseRoutes(routes)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	opts := b.opts.Clone()
	for _, u := range add {
		if !slices.ContainsFunc(opts.Routes, func(have *url.URL) bool { return have.String() == u.String() }) {
			opts.Routes = append(opts.Routes, u)
		}
	}
	if len(opts.Routes) == len(b.opts.Routes) {
		return nil
	}
	if err := b.srv.ReloadOptions(opts.Clone()); err != nil {
		return fmt.Errorf("bus: add routes: %w", err)
	}
	b.opts = opts
	return nil
}

// WatchRoutes calls f whenever the server has more routes than when it
// last looked (a peer back after a partition or a restart), looking every
// period, until ctx is done. NATS reports no route events, so it polls.
func (b *Bus) WatchRoutes(ctx context.Context, period time.Duration, f func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	last := b.Routes()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := b.Routes()
		if n > last {
			f()
		}
		last = n
	}
}

// Routes is the number of routes to other servers.
func (b *Bus) Routes() int { return b.srv.NumRoutes() }

// Close drains the client and shuts the server down.
func (b *Bus) Close() {
	if b.conn != nil {
		b.conn.Close()
	}
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}

// natsLogger passes the embedded server's warnings and errors (failed
// routes, TLS handshakes) to the node's log; notices go to debug.
type natsLogger struct{ l *slog.Logger }

func (n natsLogger) Noticef(format string, v ...any) { n.l.Debug("nats: " + fmt.Sprintf(format, v...)) }
func (n natsLogger) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(msg, "will not be verified") {
		// Routes skip Go's hostname check because the SPIFFE verifier
		// (tlsconf) checks the peer's SVID instead.
		n.l.Debug("nats: " + msg)
		return
	}
	n.l.Warn("nats: " + msg)
}
func (n natsLogger) Fatalf(format string, v ...any) { n.l.Error("nats: " + fmt.Sprintf(format, v...)) }
func (n natsLogger) Errorf(format string, v ...any) { n.l.Warn("nats: " + fmt.Sprintf(format, v...)) }
func (n natsLogger) Debugf(format string, v ...any) {}
func (n natsLogger) Tracef(format string, v ...any) {}
