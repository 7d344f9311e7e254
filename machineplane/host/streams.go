package host

import (
	"context"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
)

// OpenStream opens a stream of proto to peer, dialling the addresses given
// (a member's record names them) if h has no connection yet. The stream is
// secured by libp2p (TLS or Noise): the remote end is peer.
func OpenStream(ctx context.Context, h host.Host, id string, addrs []string, proto string) (network.Stream, error) {
	pid, err := peer.Decode(id)
	if err != nil {
		return nil, fmt.Errorf("host: peer %q: %w", id, err)
	}
	for _, a := range addrs {
		if ma, err := multiaddr.NewMultiaddr(a); err == nil {
			if ai, err := peer.AddrInfoFromP2pAddr(ma); err == nil && ai.ID == pid {
				h.Peerstore().AddAddrs(pid, ai.Addrs, peerstore.TempAddrTTL)
			}
		}
	}
	s, err := h.NewStream(ctx, pid, protocol.ID(proto))
	if err != nil {
		return nil, fmt.Errorf("host: open %s to %s: %w", proto, id, err)
	}
	return s, nil
}

// Serve answers streams of proto with fn until ctx is done, for remote
// peers allow accepts (members of the fabric); others are reset. fn gets a
// context that ends with ctx, and must return soon after; Serve returns
// once every fn has.
func Serve(ctx context.Context, h host.Host, proto string, allow func(peer.ID) bool, fn func(ctx context.Context, s network.Stream)) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	done := false
	h.SetStreamHandler(protocol.ID(proto), func(s network.Stream) {
		mu.Lock()
		if done || !allow(s.Conn().RemotePeer()) {
			mu.Unlock()
			s.Reset()
			return
		}
		wg.Add(1)
		mu.Unlock()
		defer wg.Done()
		fn(ctx, s)
	})
	<-ctx.Done()
	h.RemoveStreamHandler(protocol.ID(proto))
	mu.Lock()
	done = true
	mu.Unlock()
	wg.Wait()
}
