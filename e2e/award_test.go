package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/nats-io/nats.go"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/mycelfabric/mycel/machineplane/host"
	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/securityplane/envelope"
	"github.com/mycelfabric/mycel/securityplane/tlsconf"
	"github.com/mycelfabric/mycel/workloadplane/sched"
)

// counter reads one labelled counter from a node's /metrics.
func counter(t testing.TB, n *node, name, reason string) float64 {
	t.Helper()
	f := metricFamilies(t, n)[name]
	if f == nil {
		return 0
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "reason" && l.GetValue() == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestForgedAndReplayedAwardsAreRefused: an insider with a user SVID of the
// trust domain connects to a node's bus, captures a genuine award while
// kubectl's pod is placed, and replays it, forges one with a stranger's key,
// and sends one signed with a member's key for a tender the candidate never
// bid on. None is confirmed, each is counted on the candidate's /metrics,
// and the pod stays where it was placed.
func TestForgedAndReplayedAwardsAreRefused(t *testing.T) {
	a := startNode(t)
	b := joinNode(t, a)
	waitReady(t, []*node{a, b}, []*node{a, b})
	authority, err := ca.Load(a.caDir)
	if err != nil {
		t.Fatal(err)
	}
	user, _ := ca.UserID(authority.TrustDomain(), "mallory")
	is, err := authority.Issue(ca.Request{ID: user, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := is.KeyPEM()
	svid, err := x509svid.Parse(is.CertPEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	var ports struct {
		BusClient int `json:"busClient"`
	}
	data, err := os.ReadFile(filepath.Join(a.dataDir, "ports.json"))
	if err != nil || json.Unmarshal(data, &ports) != nil {
		t.Fatalf("ports.json of %s: %v", a.name, err)
	}
	busHost, _, _ := strings.Cut(a.apiAddr, ":")
	nc, err := nats.Connect(fmt.Sprintf("tls://%s:%d", busHost, ports.BusClient),
		nats.Secure(tlsconf.Client(svid, authority.Bundle(), tlsconf.Nodes(authority.TrustDomain()))))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(fmt.Sprintf(sched.SubjectFmt, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	pod := `apiVersion: v1
kind: Pod
metadata: {name: placed, namespace: default}
spec:
  containers: [{name: web, image: ` + demoImage + `}]
`
	if out, err := a.kubectlIn(pod, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var genuine *nats.Msg
	var award sched.Award
	for genuine == nil {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			t.Fatalf("no award seen on the bus: %v", err)
		}
		if e, err := envelope.Decode(m.Data); err == nil && e.Type == sched.TypeAward && json.Unmarshal(e.Payload, &award) == nil {
			genuine = m
		}
	}
	var placedOn string
	eventually(t, 30*time.Second, func() error {
		placedOn = strings.TrimSpace(a.kubectl("get", "pod", "placed", "-o", "jsonpath={.spec.nodeName}"))
		if placedOn == "" {
			return fmt.Errorf("pod not bound yet")
		}
		return nil
	})
	ids := map[*node]*host.Identity{}
	for _, n := range []*node{a, b} {
		if ids[n], err = host.LoadOrCreateIdentity(n.dataDir); err != nil {
			t.Fatal(err)
		}
	}
	target, other := a, b
	if genuine.Subject == fmt.Sprintf(sched.SubjectFmt, ids[b].ID) {
		target, other = b, a
	}
	if target.name != placedOn {
		t.Fatalf("the award went to %s, the pod was bound to %s", target.name, placedOn)
	}

	seal := func(key crypto.PrivKey, aw sched.Award) []byte {
		payload, _ := json.Marshal(aw)
		data, err := envelope.Seal(key, sched.TypeAward, payload, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	stranger, _, _ := crypto.GenerateEd25519Key(nil)
	before := map[string]float64{
		"replay":         counter(t, target, "mycel_envelope_rejected_total", "replay"),
		"unknown_sender": counter(t, target, "mycel_envelope_rejected_total", "unknown_sender"),
		"unknown_tender": counter(t, target, "mycel_sched_awards_rejected_total", "unknown_tender"),
	}
	for what, data := range map[string][]byte{"replayed": genuine.Data, "forged": seal(stranger, award)} {
		if _, err := nc.Request(genuine.Subject, data, time.Second); err != nats.ErrTimeout {
			t.Errorf("%s award: %v, want no answer at all", what, err)
		}
	}
	bogus := sched.Award{Tender: ids[other].ID.String() + "/" + string(award.Pod) + "/99", Pod: award.Pod, LeaseUntil: time.Now().Add(time.Minute).UnixNano()}
	m, err := nc.Request(genuine.Subject, seal(ids[other].Key, bogus), 5*time.Second)
	if err != nil {
		t.Fatalf("member-signed award for an unknown tender: %v", err)
	}
	var reply sched.Reply
	if e, err := envelope.Decode(m.Data); err != nil || json.Unmarshal(e.Payload, &reply) != nil || reply.Type != sched.TypeDecline {
		t.Fatalf("member-signed award for an unknown tender: reply %s, want a decline", m.Data)
	}
	for reason, was := range before {
		name := "mycel_envelope_rejected_total"
		if reason == "unknown_tender" {
			name = "mycel_sched_awards_rejected_total"
		}
		if now := counter(t, target, name, reason); now-was < 1 {
			t.Errorf("%s{reason=%q} on %s went from %v to %v, want it counted", name, reason, target.name, was, now)
		}
	}
	if got := strings.TrimSpace(a.kubectl("get", "pod", "placed", "-o", "jsonpath={.spec.nodeName}")); got != placedOn {
		t.Errorf("pod moved from %s to %q after the attacks", placedOn, got)
	}
}
