package store

import (
	"fmt"
	"sync"
	"time"
)

// Timestamp is a hybrid logical clock reading plus the node that took it.
// Timestamps order writes to the same key across replicas: later Wall wins,
// then higher Logical, then the greater Node as a deterministic tie-break.
type Timestamp struct {
	// Wall is physical time in Unix nanoseconds.
	Wall int64 `json:"wall"`
	// Logical orders events within the same Wall.
	Logical uint32 `json:"logical"`
	// Node is the writer's node ID.
	Node string `json:"node"`
}

// Less reports whether t orders before u.
func (t Timestamp) Less(u Timestamp) bool {
	if t.Wall != u.Wall {
		return t.Wall < u.Wall
	}
	if t.Logical != u.Logical {
		return t.Logical < u.Logical
	}
	return t.Node < u.Node
}

// Clock is a hybrid logical clock. It is safe for concurrent use.
type Clock struct {
	mu   sync.Mutex
	node string
	now  func() time.Time
	last Timestamp
}

// NewClock returns a clock for node reading physical time from now.
func NewClock(node string, now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{node: node, now: now}
}

// Now returns a timestamp greater than every one it returned or observed before.
func (c *Clock) Now() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	wall := c.now().UnixNano()
	if wall > c.last.Wall {
		c.last = Timestamp{Wall: wall, Node: c.node}
	} else {
		c.last = Timestamp{Wall: c.last.Wall, Logical: c.last.Logical + 1, Node: c.node}
	}
	return c.last
}

// Observe moves the clock past a timestamp received from another replica.
func (c *Clock) Observe(t Timestamp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last.Wall < t.Wall || (c.last.Wall == t.Wall && c.last.Logical < t.Logical) {
		c.last = Timestamp{Wall: t.Wall, Logical: t.Logical, Node: c.node}
	}
}

// Last is the newest timestamp the clock returned or observed.
func (c *Clock) Last() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

func (t Timestamp) String() string {
	return fmt.Sprintf("%s+%d@%s", time.Unix(0, t.Wall).UTC().Format(time.RFC3339Nano), t.Logical, t.Node)
}
