package mycel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mycelfabric/mycel/machineplane/bus"
	"github.com/mycelfabric/mycel/machineplane/dht"
	mhost "github.com/mycelfabric/mycel/machineplane/host"
	"github.com/mycelfabric/mycel/machineplane/noderecord"
	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/securityplane/envelope"
	"github.com/mycelfabric/mycel/securityplane/tlsconf"
	"github.com/mycelfabric/mycel/workloadplane/replica"
	"github.com/mycelfabric/mycel/workloadplane/store"
)

// TestForgedMessagesAreRejectedAndCounted: an insider holding a valid client
// SVID of the trust domain connects to node-a's bus and sends store writes
// that are malformed, tampered with, from a stranger, from a member but
// skewed by an hour, replayed, and oversized; a DHT peer that stores
// anything offers node-a records with an SVID of a foreign trust domain and
// with an expired SVID. node-a applies none of them and counts each by
// reason on /metrics.
func TestForgedMessagesAreRejectedAndCounted(t *testing.T) {
	caDir, a, b := twoNodes(t)
	waitFor(t, a, 30*time.Second, func() error {
		if len(a.members.Live()) != 2 || len(b.members.Live()) != 2 {
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

	// Capture a genuine write of node-b's as it fans out.
	sub, err := nc.SubscribeSync(replica.SubjectPut)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.objs.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "genuine"}}); err != nil {
		t.Fatal(err)
	}
	var genuine []byte
	var rec store.Record
	for genuine == nil {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			t.Fatalf("no write of node-b's seen on the bus: %v", err)
		}
		var batch struct{ Records []store.Record }
		e, err := envelope.Decode(m.Data)
		if err != nil || e.Sender != b.PeerID() || json.Unmarshal(e.Payload, &batch) != nil {
			continue
		}
		for _, r := range batch.Records {
			if strings.HasSuffix(r.Key, "/genuine") {
				genuine, rec = m.Data, r
			}
		}
	}
	waitFor(t, a, 10*time.Second, func() error {
		return a.objs.Get(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "genuine"}})
	})

	// The same write, for another namespace each time.
	writeOf := func(name string) []byte {
		r := rec
		r.Key = strings.TrimSuffix(rec.Key, "genuine") + name
		r.Value = json.RawMessage(strings.ReplaceAll(string(rec.Value), `"genuine"`, `"`+name+`"`))
		data, _ := json.Marshal(struct {
			Records []store.Record `json:"records"`
		}{[]store.Record{r}})
		return data
	}
	seal := func(key crypto.PrivKey, name string, at time.Time) []byte {
		data, err := envelope.Seal(key, replica.TypePut, writeOf(name), at)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	tampered := func() []byte {
		e, _ := envelope.Decode(genuine)
		e.Payload = writeOf("forged-tampered")
		return e.Encode()
	}
	stranger, _, _ := crypto.GenerateEd25519Key(nil)

	before := scrape(t, a, authority)
	attacks := []struct {
		reason string
		data   []byte
	}{
		{"malformed", []byte(`{"v":1,"type":"store.put/v1","payload":"not base64"`)},
		{"bad_signature", tampered()},
		{"unknown_sender", seal(stranger, "forged-stranger", time.Now())},
		{"skew", seal(b.id.Key, "forged-skewed", time.Now().Add(-time.Hour))},
		{"replay", genuine},
	}
	for _, at := range attacks {
		if err := nc.Publish(replica.SubjectPut, at.data); err != nil {
			t.Fatalf("%s: %v", at.reason, err)
		}
	}
	// Nothing larger than the bus's payload limit reaches any node.
	if err := nc.Publish(replica.SubjectPut, make([]byte, bus.MaxPayload+1)); !errors.Is(err, nats.ErrMaxPayload) {
		t.Fatalf("an oversized message: %v, want %v", err, nats.ErrMaxPayload)
	}
	// Then a genuine write of node-b's, on the same connection: a node
	// handles one sender's messages in order, so once node-a holds it,
	// node-a has opened every attack before it.
	if err := nc.Publish(replica.SubjectPut, seal(b.id.Key, "sentinel", time.Now())); err != nil {
		t.Fatal(err)
	}
	kick := make(chan struct{}, 1)
	go a.objs.Notify(ctx, "namespaces", kick)
	for a.objs.Get(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sentinel"}}) != nil {
		select {
		case <-ctx.Done():
			t.Fatal("node-a never applied node-b's genuine write sent after the attacks")
		case <-kick:
		}
	}

	// A DHT peer that stores anything offers node-a records of its own
	// whose SVIDs are of a foreign trust domain, and expired.
	foreignTD, err := ca.Init(filepath.Join(t.TempDir(), "foreign"), "foreign.test")
	if err != nil {
		t.Fatal(err)
	}
	expiredCA := authority.WithClock(func() time.Time { return time.Now().Add(-48 * time.Hour) })
	offerRecords(ctx, t, a, foreignTD, expiredCA)

	// Every attack has been processed (the DHT puts returned after node-a
	// answered them): each is counted.
	want := map[string]float64{}
	for _, at := range attacks {
		want["mycel_envelope_rejected_total/"+at.reason] = 1
	}
	want["mycel_dht_records_rejected_total/foreign_trust_domain"] = 1
	want["mycel_dht_records_rejected_total/svid_expired"] = 1
	after := scrape(t, a, authority)
	for k, n := range want {
		if after[k]-before[k] < n {
			t.Errorf("not counted on node-a's /metrics: %s went from %v to %v", k, before[k], after[k])
		}
	}
	for _, n := range []*Node{a, b} {
		for _, name := range []string{"forged-tampered", "forged-stranger", "forged-skewed"} {
			err := n.objs.Get(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
			if !apierrors.IsNotFound(err) {
				t.Errorf("%s holds namespace %s: %v", n.Name(), name, err)
			}
		}
	}
}

// offerRecords stores, through a DHT peer that accepts anything, one node
// record for each authority's SVID under the peer's own key, and checks
// node-a refuses every one.
func offerRecords(ctx context.Context, t *testing.T, a *Node, authorities ...*ca.Authority) {
	t.Helper()
	for _, auth := range authorities {
		id, err := mhost.LoadOrCreateIdentity(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		h, err := mhost.New(id, []string{"/ip4/127.0.0.1/tcp/0"}, mhost.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		permissive, err := kaddht.New(h, kaddht.Mode(kaddht.ModeServer), kaddht.ProtocolPrefix(dht.ProtocolPrefix),
			kaddht.Validator(record.NamespacedValidator{noderecord.Namespace: acceptAll{}}))
		if err != nil {
			t.Fatal(err)
		}
		defer permissive.Close()
		if err := h.Connect(ctx, peer.AddrInfo{ID: a.p2p.ID(), Addrs: a.p2p.Addrs()}); err != nil {
			t.Fatal(err)
		}
		// node-a enters the routing table after identify and a check.
		for permissive.RoutingTable().Find(a.p2p.ID()) == "" {
			select {
			case <-ctx.Done():
				t.Fatal("node-a never entered the attacker's routing table")
			case <-time.After(5 * time.Millisecond):
			}
		}
		sid, _ := ca.NodeID(auth.TrustDomain(), id.ID.String())
		is, err := auth.Issue(ca.Request{ID: sid, Client: true, Server: true})
		if err != nil {
			t.Fatal(err)
		}
		signed, err := noderecord.Sign(&noderecord.Record{PeerID: id.ID.String(), Name: "intruder", SVID: [][]byte{is.Cert.Raw},
			Seq: 1, Expires: time.Now().Add(time.Hour).Unix()}, id.Key)
		if err != nil {
			t.Fatal(err)
		}
		// The put fails where node-a refuses it; the attacker keeps its own copy.
		permissive.PutValue(ctx, noderecord.Key(id.ID), signed)
		if _, err := a.dht.Lookup(ctx, id.ID); err == nil {
			t.Fatalf("node-a accepted a record with an SVID of %s (valid to %s)", auth.TrustDomain(), is.Cert.NotAfter)
		}
	}
}

type acceptAll struct{}

func (acceptAll) Validate(string, []byte) error        { return nil }
func (acceptAll) Select(string, [][]byte) (int, error) { return 0, nil }

// scrape reads n's /metrics through its API as a user of the trust domain
// and returns every sample of the rejection counters, keyed
// "metric/reason".
// insider connects to n's bus as a user of the trust domain: any SVID of
// the trust domain may connect to the bus, so an insider can send anything.
func insider(t *testing.T, n *Node, authority *ca.Authority) *nats.Conn {
	t.Helper()
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
	nc, err := nats.Connect(n.bus.ClientURL(), nats.Secure(tlsconf.Client(svid, authority.Bundle(), tlsconf.Nodes(authority.TrustDomain()))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// restConfig is a client configuration for n's API as user "tester".
func restConfig(t *testing.T, n *Node, a *ca.Authority) *rest.Config {
	t.Helper()
	kc, err := a.Kubeconfig("tester", []string{ca.AdminGroup}, time.Hour, ca.KubeconfigContext{Name: n.Name(), Server: n.URL()})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func scrape(t *testing.T, n *Node, a *ca.Authority) map[string]float64 {
	t.Helper()
	client, err := rest.HTTPClientFor(restConfig(t, n, a))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, name := range []string{"mycel_envelope_rejected_total", "mycel_dht_records_rejected_total", "mycel_sched_awards_rejected_total"} {
		f := families[name]
		if f == nil {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					out[name+"/"+l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}
