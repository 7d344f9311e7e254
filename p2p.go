package mycel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	goruntime "runtime"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	corev1 "k8s.io/api/core/v1"

	"github.com/mycelfabric/mycel/kubeapi"
	"github.com/mycelfabric/mycel/machineplane/bus"
	"github.com/mycelfabric/mycel/machineplane/dht"
	"github.com/mycelfabric/mycel/machineplane/discovery"
	"github.com/mycelfabric/mycel/machineplane/host"
	"github.com/mycelfabric/mycel/machineplane/noderecord"
	"github.com/mycelfabric/mycel/workloadplane/agent"
)

// startHost starts the libp2p host, on the ports of the last start when it
// can.
func (n *Node) startHost(context.Context) (err error) {
	kept := host.LoadPorts(n.cfg.DataDir)
	if n.p2p, err = host.New(n.id, kept.Listen(n.cfg.P2PListen), host.DefaultLimits()); err != nil && kept.P2PTCP+kept.P2PQUIC > 0 {
		n.log.Warn("cannot listen on the libp2p ports of the last start; picking others (peers find this node again through the DHT and the bus)", "err", err)
		n.p2p, err = host.New(n.id, n.cfg.P2PListen, host.DefaultLimits())
	}
	return err
}

// peersToJoin are the bootstrap peers and, for a node that joined with a
// token, its issuers.
func (n *Node) peersToJoin() []string {
	return append(append([]string{}, n.cfg.Bootstrap...), n.creds.Issuers()...)
}

// Joining the fabric: each attempt to reach the peers to join is bounded
// by joinTimeout; a node that reaches none starts alone and retries,
// backing off to joinRetryMax (like Consul's retry_join).
const (
	joinTimeout  = 10 * time.Second
	joinRetryMax = 30 * time.Second
)

// joinState is why the node has not reached its peers to join yet; nil
// once it has, or when it has none.
type joinState struct {
	mu  sync.Mutex
	err error
}

func (j *joinState) set(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.err = err
}

func (j *joinState) pending() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// startDHT starts the DHT and joins it through the peers to join, and sets
// up the publisher of the node's record there. When no peer to join
// answers, the node starts alone and retryJoin keeps trying.
func (n *Node) startDHT(ctx context.Context) error {
	boot, err := host.ParseBootstrap(n.peersToJoin())
	if err != nil {
		return err
	}
	rejected, err := dht.NewRejectedCounter(n.reg)
	if err != nil {
		return err
	}
	if n.dht, err = dht.New(ctx, n.p2p, dht.Config{Verifier: &noderecord.Verifier{Bundle: n.creds.Bundle()}, Bootstrap: boot, JoinLater: true, Rejected: rejected}); err != nil {
		return err
	}
	n.records = discovery.NewPublisher(discovery.PublisherConfig{DHT: n.dht, Key: n.id.Key, Facts: n.recordFacts, Now: n.cfg.Now})
	if len(boot) > 0 {
		jctx, cancel := context.WithTimeout(ctx, joinTimeout)
		defer cancel()
		if err := n.dht.Join(jctx, boot...); err != nil {
			n.join.set(err)
			n.log.Warn("cannot reach any peer to join; starting alone and retrying in the background", "err", err)
		}
	}
	return nil
}

// retryJoin tries the peers to join again until the node reaches one (or
// another node reaches it), then routes its bus to theirs.
func (n *Node) retryJoin(ctx context.Context) {
	wait := time.Second
	for n.join.pending() != nil {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, joinRetryMax)
		if err := n.joinNow(ctx); err != nil {
			n.join.set(err)
			n.log.Warn("still cannot reach any peer to join; retrying", "in", wait, "err", err)
			continue
		}
		n.join.set(nil)
		n.log.Info("joined the fabric", "busRoutes", n.bus.Routes(), "dhtPeers", n.dht.RoutingTableSize())
	}
}

// joinNow joins the DHT through the peers to join and routes the bus to
// theirs, unless another node has routed its bus to this one already.
func (n *Node) joinNow(ctx context.Context) error {
	if n.bus.Routes() > 0 {
		return nil
	}
	boot, _ := host.ParseBootstrap(n.peersToJoin())
	jctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	if err := n.dht.Join(jctx, boot...); err != nil {
		return err
	}
	routes, missing := discovery.BusRoutes(ctx, n.dht, boot, joinTimeout)
	if len(routes) == 0 {
		return fmt.Errorf("no peer to join has a bus route in the DHT yet: %w", errors.Join(missing...))
	}
	return n.bus.AddRoutes(routes)
}

// startBus starts the node's embedded NATS server on the API's host (on
// loopback for a wildcard API address: a fabric across machines needs
// nodes started with a specific --api-addr), routed to the servers of the
// peers to join as their records name them, and keeps the ports it got.
func (n *Node) startBus(ctx context.Context) error {
	busHost := n.apiHost
	if ip := net.ParseIP(busHost); ip == nil || ip.IsUnspecified() {
		busHost = "127.0.0.1"
	}
	var routes []string
	if n.join.pending() == nil {
		boot, _ := host.ParseBootstrap(n.peersToJoin())
		var missing []error
		routes, missing = discovery.BusRoutes(ctx, n.dht, boot, 15*time.Second)
		for _, err := range missing {
			n.log.Warn("no route to a bootstrap peer's bus yet", "err", err)
		}
	}
	kept := host.LoadPorts(n.cfg.DataDir)
	cfg := bus.Config{Name: n.PeerID(), Host: busHost, Routes: routes, SVID: n.creds, Bundle: n.creds.Bundle(),
		ClientPort: kept.BusClient, ClusterPort: kept.BusCluster, Logger: n.log.With("component", "bus")}
	var err error
	if n.bus, err = bus.Start(cfg); err != nil && cfg.ClientPort+cfg.ClusterPort > 0 {
		n.log.Warn("cannot listen on the bus ports of the last start; picking others", "err", err)
		cfg.ClientPort, cfg.ClusterPort = 0, 0
		n.bus, err = bus.Start(cfg)
	}
	if err != nil {
		return err
	}
	return n.keepPorts()
}

// watchRoutes announces this node again whenever its bus reaches more
// servers (a partition healed, a peer restarted): their nodes may hold it
// dead, and would otherwise re-admit it only at its next periodic
// announcement.
func (n *Node) watchRoutes(ctx context.Context) {
	n.bus.WatchRoutes(ctx, 250*time.Millisecond, n.members.AnnounceSoon)
}

// keepPorts records the ports the node listens on, to ask for them again
// after a restart.
func (n *Node) keepPorts() error {
	var p host.Ports
	var err error
	if p.P2PTCP, p.P2PQUIC, err = host.ListenPorts(n.p2p.Network().ListenAddresses()); err != nil {
		return fmt.Errorf("libp2p: %w", err)
	}
	p.BusClient, p.BusCluster = n.bus.Ports()
	return p.Save(n.cfg.DataDir)
}

// P2PAddrs are the node's libp2p addresses, each ending in /p2p/<peerID>,
// as other nodes pass them to --bootstrap.
func (n *Node) P2PAddrs() []string { return host.P2PAddrs(n.p2p) }

// signRecord signs the node's first record, which membership announces.
func (n *Node) signRecord(ctx context.Context) error {
	_, err := n.records.Sign(ctx)
	return err
}

// recordFacts is what the node's record says about it now.
func (n *Node) recordFacts(ctx context.Context) noderecord.Record {
	r := noderecord.Record{
		PeerID:   n.PeerID(),
		Name:     n.cfg.Name,
		Addrs:    n.P2PAddrs(),
		SVID:     [][]byte{n.creds.Certificate().Raw},
		Region:   n.cfg.Labels[corev1.LabelTopologyRegion],
		Zone:     n.cfg.Labels[corev1.LabelTopologyZone],
		Labels:   n.cfg.Labels,
		Versions: map[string]string{"mycel": Version, "os": goruntime.GOOS, "arch": goruntime.GOARCH},
		APIURL:   n.URL(),
		NATSURL:  n.bus.ClusterURL(),
	}
	if info, err := n.runtime.Info(ctx); err == nil {
		r.Versions["runtime"] = info.Name + "/" + info.Version
	}
	r.Capacity, r.Allocatable = map[string]string{}, map[string]string{}
	for k, q := range n.capacity {
		r.Capacity[string(k)] = q.String()
		r.Allocatable[string(k)] = q.String()
	}
	return r
}

// dialer opens streams to the agents of other nodes by name: the node's
// peer and addresses come from its verified record, as membership holds it.
type dialer struct{ n *Node }

// Dial opens a logs stream (agent.Dialer).
func (d dialer) Dial(ctx context.Context, node string) (io.ReadWriteCloser, error) {
	return d.open(ctx, node, agent.LogsProtocol)
}

func (d dialer) open(ctx context.Context, node, proto string) (network.Stream, error) {
	for _, p := range d.n.members.Peers() {
		if p.Name != node || !d.n.members.IsLive(p.ID) {
			continue
		}
		var addrs []string
		if r := d.n.members.Record(p.ID); r != nil {
			addrs = r.Addrs
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return host.OpenStream(ctx, d.n.p2p, p.ID, addrs, proto)
	}
	return nil, fmt.Errorf("node %s is not a live member of the fabric", node)
}

// serveLogs answers other nodes' agents asking for the logs of pods here.
func (n *Node) serveLogs(ctx context.Context) {
	host.Serve(ctx, n.p2p, agent.LogsProtocol, n.members.Known, func(ctx context.Context, s network.Stream) { n.agent.ServeLogs(ctx, s) })
}

// startStreams starts the node's streaming server (exec, attach and
// port-forward of its pods) on an in-process listener that this node's API
// reaches through a pipe and other members' APIs through StreamProtocol.
func (n *Node) startStreams(context.Context) error {
	n.streams = host.NewListener()
	return nil
}

func (n *Node) serveStreams(ctx context.Context) {
	srv := &http.Server{Handler: kubeapi.CancelOnHangup(n.agent.StreamHandler()), ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelWarn)}
	go srv.Serve(n.streams)
	host.Serve(ctx, n.p2p, agent.StreamProtocol, n.members.Known, n.streams.ServeStream)
	srv.Close()
}

// streamTransport is what the API proxies exec, attach and port-forward
// through: a URL's host is the name of the node running the pod.
func (n *Node) streamTransport() *http.Transport {
	return &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			node, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if node == n.cfg.Name {
				return n.streams.Pipe(ctx)
			}
			s, err := dialer{n}.open(ctx, node, agent.StreamProtocol)
			if err != nil {
				return nil, err
			}
			return host.StreamConn(s), nil
		},
	}
}
