package host

import (
	"fmt"
	"net"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// Limits are the libp2p resource manager's explicit limits.
type Limits struct {
	// Conns bounds all connections; ConnsInbound those dialled to us.
	Conns, ConnsInbound int
	// Streams bounds all streams.
	Streams int
	// TransientConns bounds connections still in their handshake; a node
	// many peers dial at once (a bootstrap node) needs room here.
	TransientConns int
	// PeerConns and PeerStreams bound what one peer may hold.
	PeerConns, PeerStreams int
	// MemoryBytes bounds the memory libp2p may reserve.
	MemoryBytes int64
}

// DefaultLimits suit a node of a fabric of up to a few hundred nodes.
func DefaultLimits() Limits {
	return Limits{
		Conns: 512, ConnsInbound: 256, Streams: 4096, TransientConns: 128,
		PeerConns: 8, PeerStreams: 256, MemoryBytes: 256 << 20,
	}
}

func (l Limits) limiter() rcmgr.Limiter {
	scaled := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaled)
	base := scaled.Scale(l.MemoryBytes, 1024)
	partial := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns: rcmgr.LimitVal(l.Conns), ConnsInbound: rcmgr.LimitVal(l.ConnsInbound), ConnsOutbound: rcmgr.LimitVal(l.Conns),
			Streams: rcmgr.LimitVal(l.Streams), StreamsInbound: rcmgr.LimitVal(l.Streams / 2), StreamsOutbound: rcmgr.LimitVal(l.Streams / 2),
			Memory: rcmgr.LimitVal64(l.MemoryBytes),
		},
		Transient: rcmgr.ResourceLimits{
			Conns: rcmgr.LimitVal(l.TransientConns), ConnsInbound: rcmgr.LimitVal(l.TransientConns), ConnsOutbound: rcmgr.LimitVal(l.TransientConns),
		},
		PeerDefault: rcmgr.ResourceLimits{
			Conns: rcmgr.LimitVal(l.PeerConns), Streams: rcmgr.LimitVal(l.PeerStreams),
			StreamsInbound: rcmgr.LimitVal(l.PeerStreams / 2), StreamsOutbound: rcmgr.LimitVal(l.PeerStreams / 2),
		},
	}
	return rcmgr.NewFixedLimiter(partial.Build(base))
}

// New starts a libp2p host with the node's identity, TCP and QUIC
// transports on listen (multiaddrs, e.g. /ip4/127.0.0.1/tcp/0 and
// /ip4/127.0.0.1/udp/0/quic-v1), and the resource manager with limits. Relay,
// UPnP and libp2p's global metrics are off: a node talks only to the peers
// it is told about and those they lead it to.
func New(id *Identity, listen []string, limits Limits) (host.Host, error) {
	rm, err := rcmgr.NewResourceManager(limits.limiter(), rcmgr.WithMetricsDisabled())
	if err != nil {
		return nil, fmt.Errorf("host: resource manager: %w", err)
	}
	h, err := libp2p.New(
		libp2p.Identity(id.Key),
		libp2p.ListenAddrStrings(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("host: start libp2p on %v: %w", listen, err)
	}
	return h, nil
}

// DefaultListen listens for libp2p on the API's host, any free port, over
// TCP and QUIC.
func DefaultListen(apiHost string) []string {
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

// P2PAddrs are h's addresses, each ending in /p2p/<peerID>, as other nodes
// pass them to --bootstrap.
func P2PAddrs(h host.Host) []string {
	addrs, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

// ParseBootstrap parses bootstrap multiaddrs (each ending in /p2p/<peerID>).
func ParseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, s := range addrs {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("bootstrap address %q: %w (want a multiaddr ending in /p2p/<peerID>)", s, err)
		}
		out = append(out, *ai)
	}
	return out, nil
}
