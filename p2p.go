package mycel

import (
	"context"
	"fmt"
	"net"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/mycelfabric/mycel/machineplane/bus"
	"github.com/mycelfabric/mycel/machineplane/dht"
	"github.com/mycelfabric/mycel/machineplane/noderecord"
)

// Record lifetimes: a node re-publishes its record well before it expires.
const (
	recordTTL     = 5 * time.Minute
	recordRefresh = time.Minute
)

// defaultP2PListen listens for libp2p on the API's host, any free port.
func defaultP2PListen(apiHost string) []string {
	ip := net.ParseIP(apiHost)
	if ip == nil || ip.IsUnspecified() {
		return []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}
	}
	proto := "ip4"
	if ip.To4() == nil {
		proto = "ip6"
	}
	return []string{fmt.Sprintf("/%s/%s/tcp/0", proto, ip), fmt.Sprintf("/%s/%s/udp/0/quic-v1", proto, ip)}
}

// startDHT joins the DHT through the bootstrap peers (and, for a node that
// joined with a token, its issuers).
func (n *Node) startDHT(ctx context.Context, reg prometheus.Registerer) error {
	var boot []peer.AddrInfo
	for _, s := range append(append([]string{}, n.cfg.Bootstrap...), n.issuers...) {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return fmt.Errorf("bootstrap address %q: %w (want a multiaddr ending in /p2p/<peerID>)", s, err)
		}
		boot = append(boot, *ai)
	}
	rejected, err := dht.NewRejectedCounter(reg)
	if err != nil {
		return err
	}
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n.dht, err = dht.New(jctx, n.p2p, dht.Config{Verifier: &noderecord.Verifier{Bundle: n.creds.bundle}, Bootstrap: boot, Rejected: rejected})
	return err
}

// startBus starts the node's embedded NATS server, routed to the servers of
// the bootstrap peers (and issuers) as their records name them.
func (n *Node) startBus(ctx context.Context, host string, kept ports) error {
	var routes []string
	for _, s := range append(append([]string{}, n.cfg.Bootstrap...), n.issuers...) {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			continue
		}
		// A peer that has just started may not have published its record
		// yet (`mycel up` starts nodes back to back): look again for a while.
		lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		r, err := n.dht.LookupAny(lctx, ai.ID)
		for err != nil && lctx.Err() == nil {
			select {
			case <-lctx.Done():
			case <-time.After(250 * time.Millisecond):
				r, err = n.dht.LookupAny(lctx, ai.ID)
			}
		}
		cancel()
		if err != nil {
			n.log.Warn("no route to a bootstrap peer's bus yet", "peer", ai.ID.String(), "err", err)
			continue
		}
		if r.NATSURL != "" {
			routes = append(routes, r.NATSURL)
		}
	}
	cfg := bus.Config{Name: n.id.ID.String(), Host: host, Routes: routes, SVID: n.creds, Bundle: n.creds.bundle,
		ClientPort: kept.BusClient, ClusterPort: kept.BusCluster, Logger: n.log.With("component", "bus")}
	var err error
	if n.bus, err = bus.Start(cfg); err != nil && cfg.ClientPort+cfg.ClusterPort > 0 {
		n.log.Warn("cannot listen on the bus ports of the last start; picking others", "err", err)
		cfg.ClientPort, cfg.ClusterPort = 0, 0
		n.bus, err = bus.Start(cfg)
	}
	return err
}

// keepPorts records the ports the node listens on, to ask for them again
// after a restart.
func (n *Node) keepPorts() error {
	var p ports
	var err error
	if p.P2PTCP, p.P2PQUIC, err = p2pPorts(n.p2p.Network().ListenAddresses()); err != nil {
		return fmt.Errorf("libp2p: %w", err)
	}
	p.BusClient, p.BusCluster = n.bus.Ports()
	return p.save(n.cfg.DataDir)
}

// P2PAddrs are the node's libp2p addresses, each ending in /p2p/<peerID>,
// as other nodes pass them to --bootstrap.
func (n *Node) P2PAddrs() []string {
	addrs, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.p2p.ID(), Addrs: n.p2p.Addrs()})
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

func (n *Node) nodeRecord(ctx context.Context) *noderecord.Record {
	r := &noderecord.Record{
		PeerID: n.id.ID.String(),
		Name:   n.cfg.Name,
		Addrs:  n.P2PAddrs(),
		SVID:   [][]byte{n.creds.current().cert.Raw},
		Region: n.cfg.Labels[corev1.LabelTopologyRegion],
		Zone:   n.cfg.Labels[corev1.LabelTopologyZone],
		Labels: n.cfg.Labels,
		Versions: map[string]string{
			"mycel": Version, "os": goruntime.GOOS, "arch": goruntime.GOARCH,
		},
		APIURL:  n.url,
		NATSURL: n.bus.ClusterURL(),
		// Wall-clock nanoseconds: newer than any record published before a
		// restart, without keeping a counter on disk.
		Seq:     uint64(time.Now().UnixNano()),
		Expires: time.Now().Add(recordTTL).Unix(),
	}
	if info, err := n.runtime.Info(ctx); err == nil {
		r.Versions["runtime"] = info.Name + "/" + majorMinor(info.Version)
	}
	capacity := n.capacity()
	r.Capacity, r.Allocatable = map[string]string{}, map[string]string{}
	for k, q := range capacity {
		r.Capacity[string(k)] = q.String()
		r.Allocatable[string(k)] = q.String()
	}
	return r
}

// majorMinor trims a version to major.minor ("4.3.1" → "4.3").
func majorMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

// publishRecord publishes the node's record and capabilities. Publications
// are serialized with strictly increasing sequence numbers: the DHT refuses
// to replace a record with an older one.
func (n *Node) publishRecord(ctx context.Context) error {
	// Serialized whole, so a publication never overtakes a newer one.
	n.publishMu.Lock()
	defer n.publishMu.Unlock()
	r, err := n.signRecord(ctx)
	if err != nil {
		return err
	}
	if err := n.dht.Publish(ctx, n.signedRecord()); err != nil {
		return err
	}
	for _, c := range r.Capabilities() {
		if err := n.dht.Provide(ctx, c[0], c[1]); err != nil {
			return fmt.Errorf("provide %s=%s: %w", c[0], c[1], err)
		}
	}
	return nil
}

// signRecord builds and signs the node's current record, with a sequence
// number above every earlier one.
func (n *Node) signRecord(ctx context.Context) (*noderecord.Record, error) {
	n.recordMu.Lock()
	defer n.recordMu.Unlock()
	r := n.nodeRecord(ctx)
	if r.Seq <= n.lastSeq {
		r.Seq = n.lastSeq + 1
	}
	signed, err := noderecord.Sign(r, n.id.Key)
	if err != nil {
		return nil, err
	}
	n.lastSeq, n.signed = r.Seq, signed
	return r, nil
}
