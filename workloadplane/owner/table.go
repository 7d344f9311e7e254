package owner

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Members is what ownership needs of membership.
type Members interface {
	// Live lists the peer IDs of members believed alive, self included.
	Live() []string
}

// Table answers whether this node owns a workload. It is safe for
// concurrent use.
type Table struct {
	self    string
	members Members
	settled chan struct{}
}

// NewTable returns the table of node self; it owns nothing until Settle
// returns.
func NewTable(self string, members Members) *Table {
	return &Table{self: self, members: members, settled: make(chan struct{})}
}

// Owns reports whether this node owns the workload keyed by key.
func (t *Table) Owns(key types.UID) bool {
	return t.Settled() && Of(string(key), t.members.Live()) == t.self
}

// Of is the live member that owns key (the package's Of over the live
// members), settled or not.
func (t *Table) Of(key string) string { return Of(key, t.members.Live()) }

// Settled reports whether Settle has returned.
func (t *Table) Settled() bool {
	select {
	case <-t.settled:
		return true
	default:
		return false
	}
}

// Done is closed once the table has settled.
func (t *Table) Done() <-chan struct{} { return t.settled }

// Peers lists the live members other than this node.
func (t *Table) Peers() []string {
	var out []string
	for _, id := range t.members.Live() {
		if id != t.self {
			out = append(out, id)
		}
	}
	return out
}

// SettleConfig says how a node settles.
type SettleConfig struct {
	// Joining means the node was given peers to join through, or was part
	// of a fabric before it restarted: it waits to meet a member. Alone,
	// a restarted node would own every workload and place pods while the
	// fabric still runs them.
	Joining bool
	// CatchUp brings this node's store up to date with peer's (one round
	// of anti-entropy); required.
	CatchUp func(ctx context.Context, peer string) error
	// Listen is how long the node listens for members first (long enough
	// for a running fabric's announcements to reach it); zero means 1s.
	Listen time.Duration
	// Within bounds how long it tries to meet a member and catch up; zero
	// means 15s.
	Within time.Duration
	// Retry is the wait between attempts; zero means 250ms.
	Retry  time.Duration
	Logger *slog.Logger
}

// Settle listens for members, meets one if joining, catches up with one if
// there are any (a peer may refuse until our announcement reaches it, so
// it keeps trying for a while), then marks the table settled: from then
// on, Owns answers by the live members. It returns early, unsettled, when
// ctx is done.
func (t *Table) Settle(ctx context.Context, cfg SettleConfig) {
	if cfg.Listen == 0 {
		cfg.Listen = time.Second
	}
	if cfg.Within == 0 {
		cfg.Within = 15 * time.Second
	}
	if cfg.Retry == 0 {
		cfg.Retry = 250 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if !wait(ctx, cfg.Listen) {
		return
	}
	var err error
	for deadline := time.Now().Add(cfg.Within); ; {
		peers := t.Peers()
		if len(peers) == 0 && cfg.Joining && time.Now().Before(deadline) {
			err = errors.New("no member of the fabric met yet")
		} else if len(peers) == 0 {
			break
		}
		if len(peers) > 0 {
			if err = cfg.CatchUp(ctx, peers[0]); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			break
		}
		if !wait(ctx, cfg.Retry) {
			return
		}
	}
	if err != nil {
		cfg.Logger.Warn("could not catch up with a peer before taking ownership; anti-entropy continues", "err", err)
	}
	close(t.settled)
	cfg.Logger.Info("settled: taking a share of workload ownership", "members", len(t.members.Live()))
}

// wait waits d or until ctx is done, and reports whether d passed.
func wait(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
