package discovery

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"

	"github.com/mycelfabric/mycel/machineplane/dht"
	"github.com/mycelfabric/mycel/machineplane/host"
	"github.com/mycelfabric/mycel/machineplane/noderecord"
)

// ParseWhere parses "k=v,k2=v2" capability filters. Node labels are matched
// as "label:KEY=VALUE"; a bare key that is not a built-in capability (arch,
// os, region, zone, runtime, mycel) is taken as a label.
func ParseWhere(s string) ([][2]string, error) {
	var out [][2]string
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("--where %q: want key=value[,key=value]", kv)
		}
		switch k {
		case "arch", "os", "region", "zone", "runtime", "mycel":
		default:
			if !strings.HasPrefix(k, "label:") {
				k = "label:" + k
			}
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// FindNodes answers from the DHT which nodes have every capability in
// where, joining it as a client through bootstrap (multiaddrs ending in
// /p2p/<peerID>) and verifying each record against bundle.
func FindNodes(ctx context.Context, bundle *x509bundle.Bundle, bootstrap []string, where [][2]string) ([]*noderecord.Record, error) {
	if len(where) == 0 {
		return nil, errors.New("nodes: at least one key=value is required")
	}
	boot, err := host.ParseBootstrap(bootstrap)
	if err != nil {
		return nil, err
	}
	if len(boot) == 0 {
		return nil, errors.New("nodes: a --bootstrap address is required (a node's DATA/p2p.addrs)")
	}
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	h, err := host.New(&host.Identity{Key: key, ID: id}, []string{"/ip4/0.0.0.0/tcp/0"}, host.DefaultLimits())
	if err != nil {
		return nil, err
	}
	defer h.Close()
	d, err := dht.New(ctx, h, dht.Config{Verifier: &noderecord.Verifier{Bundle: bundle}, Bootstrap: boot, Client: true})
	if err != nil {
		return nil, err
	}
	defer d.Close()

	// Intersect the providers of every capability.
	var match map[peer.ID]bool
	for _, c := range where {
		provs, err := d.FindProviders(ctx, c[0], c[1], 0)
		if err != nil {
			return nil, fmt.Errorf("nodes: find %s=%s: %w", c[0], c[1], err)
		}
		next := map[peer.ID]bool{}
		for _, p := range provs {
			if match == nil || match[p.ID] {
				next[p.ID] = true
			}
		}
		match = next
	}
	var out []*noderecord.Record
	for p := range match {
		r, err := d.Lookup(ctx, p)
		if err != nil {
			continue // provides a capability but has no valid record: not a member
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// BusRoutes looks up the bus (NATS cluster) URLs of peers in their records,
// with a quorum of one: a dead peer still in routing tables must not hold
// a starting node up. A peer that has just started may not have published
// its record yet (`mycel up` starts nodes back to back), so each lookup is
// retried for up to wait. Peers without a record are left out, with why.
func BusRoutes(ctx context.Context, d *dht.DHT, peers []peer.AddrInfo, wait time.Duration) (routes []string, missing []error) {
	for _, ai := range peers {
		lctx, cancel := context.WithTimeout(ctx, wait)
		r, err := d.LookupAny(lctx, ai.ID)
		for err != nil && lctx.Err() == nil {
			select {
			case <-lctx.Done():
			case <-time.After(250 * time.Millisecond):
				r, err = d.LookupAny(lctx, ai.ID)
			}
		}
		cancel()
		switch {
		case err != nil:
			missing = append(missing, fmt.Errorf("%s: %w", ai.ID, err))
		case r.NATSURL != "":
			routes = append(routes, r.NATSURL)
		}
	}
	return routes, missing
}
