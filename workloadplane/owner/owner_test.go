package owner

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestOwnerMovesOnlyTheDeadMembersKeys(t *testing.T) {
	members := []string{"a", "b", "c", "d", "e"}
	owned := map[string]int{}
	before := map[string]string{}
	for i := range 1000 {
		k := fmt.Sprint("uid-", i)
		before[k] = Of(k, members)
		owned[before[k]]++
	}
	for _, m := range members {
		if owned[m] < 120 || owned[m] > 280 {
			t.Errorf("%s owns %d of 1000 keys: not spread", m, owned[m])
		}
	}
	for k, o := range before {
		after := Of(k, []string{"a", "b", "d", "e"})
		if o != "c" && after != o {
			t.Fatalf("%s moved from %s to %s though %s is alive", k, o, after, o)
		}
		if o == "c" && after == "c" {
			t.Fatalf("%s still owned by the dead member", k)
		}
	}
}

// TestSettleWaitsForAMemberWhenJoining: a joining node owns nothing until
// it has met a member and caught up with it; then it owns its share.
func TestSettleWaitsForAMemberWhenJoining(t *testing.T) {
	members := &switchable{}
	tb := NewTable("me", members)
	caught := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tb.Settle(context.Background(), SettleConfig{Joining: true, Listen: time.Millisecond, Retry: time.Millisecond, Within: time.Minute,
			CatchUp: func(_ context.Context, peer string) error { caught <- peer; return nil }})
	}()
	if tb.Owns("any") {
		t.Fatal("owns before settling")
	}
	members.set([]string{"me", "peer-1"})
	if got := <-caught; got != "peer-1" {
		t.Fatalf("caught up with %q", got)
	}
	<-done
	owned := 0
	for i := range 100 {
		if tb.Owns(types.UID(fmt.Sprint(i))) {
			owned++
		}
	}
	if owned == 0 || owned == 100 {
		t.Fatalf("owns %d of 100 keys with two members", owned)
	}
}

type switchable struct {
	mu sync.Mutex
	m  []string
}

func (s *switchable) set(m []string) { s.mu.Lock(); s.m = m; s.mu.Unlock() }
func (s *switchable) Live() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		return []string{"me"}
	}
	return s.m
}
