package mycel

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/securityplane/envelope"
	"github.com/mycelfabric/mycel/workloadplane/sched"
)

// TestForgedAndReplayedAwardsAreRejected: an insider on the bus captures a
// genuine award as an owner places a pod, then replays it, forges one with
// a stranger's key, and sends one signed by a member for a tender the
// candidate never bid on. The candidate answers none with a confirm, counts
// each, and the pod stays where it was placed.
func TestForgedAndReplayedAwardsAreRejected(t *testing.T) {
	caDir, a, b := twoNodes(t)
	waitFor(t, a, 30*time.Second, func() error {
		if len(a.members.Live()) != 2 || len(b.members.Live()) != 2 || !a.settled.Load() || !b.settled.Load() {
			return fmt.Errorf("live members: %d and %d", len(a.members.Live()), len(b.members.Live()))
		}
		return nil
	})
	authority, err := ca.Load(caDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc := insider(t, a, authority)
	sub, err := nc.SubscribeSync(fmt.Sprintf(sched.SubjectFmt, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "placed", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "localhost/mycel-demo:0.1"}}}}
	if err := a.objs.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	var genuine *nats.Msg
	var award sched.Award
	for genuine == nil {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			t.Fatalf("no award seen on the bus: %v", err)
		}
		var e envelope.Envelope
		if json.Unmarshal(m.Data, &e) == nil && e.Type == sched.TypeAward && json.Unmarshal(e.Payload, &award) == nil {
			genuine = m
		}
	}
	var placedOn string
	waitFor(t, a, 30*time.Second, func() error {
		if err := a.objs.Get(ctx, pod); err != nil || pod.Spec.NodeName == "" {
			return fmt.Errorf("pod not bound yet (%v)", err)
		}
		placedOn = pod.Spec.NodeName
		return nil
	})
	target := a
	if genuine.Subject == fmt.Sprintf(sched.SubjectFmt, b.PeerID()) {
		target = b
	}
	if target.Name() != placedOn {
		t.Fatalf("award went to %s but the pod was bound to %s", target.Name(), placedOn)
	}

	seal := func(key crypto.PrivKey, a sched.Award) []byte {
		payload, _ := json.Marshal(a)
		data, err := envelope.Seal(key, sched.TypeAward, payload, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	stranger, _, _ := crypto.GenerateEd25519Key(nil)
	other := a
	if target == a {
		other = b
	}
	before := scrape(t, target, authority)
	// A replay and a forgery get no answer at all.
	for name, data := range map[string][]byte{"replayed": genuine.Data, "forged": seal(stranger, award)} {
		if _, err := nc.Request(genuine.Subject, data, 500*time.Millisecond); err != nats.ErrTimeout {
			t.Errorf("%s award: got %v, want no answer (timeout)", name, err)
		}
	}
	// A member's award for a tender the candidate never bid on is refused.
	bogus := sched.Award{Tender: other.PeerID() + "/" + string(pod.UID) + "/99", Pod: pod.UID, LeaseUntil: time.Now().Add(time.Minute).UnixNano()}
	m, err := nc.Request(genuine.Subject, seal(other.id.Key, bogus), 5*time.Second)
	if err != nil {
		t.Fatalf("award for an unknown tender: %v", err)
	}
	var e envelope.Envelope
	var reply sched.Reply
	if json.Unmarshal(m.Data, &e) != nil || json.Unmarshal(e.Payload, &reply) != nil || reply.Type != sched.TypeDecline {
		t.Fatalf("award for an unknown tender: reply %s, want a decline", m.Data)
	}
	after := scrape(t, target, authority)
	for _, k := range []string{"mycel_envelope_rejected_total/replay", "mycel_envelope_rejected_total/unknown_sender", "mycel_sched_awards_rejected_total/unknown_tender"} {
		if after[k]-before[k] < 1 {
			t.Errorf("not counted on %s's /metrics: %s went from %v to %v", target.Name(), k, before[k], after[k])
		}
	}
	if err := a.objs.Get(ctx, pod); err != nil || pod.Spec.NodeName != placedOn {
		t.Errorf("pod after the attacks: on %q (%v), want still on %s", pod.Spec.NodeName, err, placedOn)
	}
}
