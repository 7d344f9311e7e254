package bus

import (
	"crypto/tls"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/securityplane/tlsconf"
)

func svidFor(t *testing.T, a *ca.Authority, id spiffeid.ID) *x509svid.SVID {
	t.Helper()
	is, err := a.Issue(ca.Request{ID: id, Server: true, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := is.KeyPEM()
	s, err := x509svid.Parse(is.CertPEM(), key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startBus(t *testing.T, a *ca.Authority, name string, routes ...string) *Bus {
	t.Helper()
	id, _ := ca.NodeID(a.TrustDomain(), name)
	b, err := Start(Config{Name: name, Host: "127.0.0.1", Routes: routes, SVID: svidFor(t, a, id), Bundle: a.Bundle()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func waitRoutes(t *testing.T, b *Bus, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for b.Routes() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d routes, want %d", b.Routes(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestClusterOverMTLS(t *testing.T) {
	a, err := ca.Init(filepath.Join(t.TempDir(), "ca"), "fabric.test")
	if err != nil {
		t.Fatal(err)
	}
	n1 := startBus(t, a, "n1")
	n2 := startBus(t, a, "n2", n1.ClusterURL())
	n3 := startBus(t, a, "n3", n1.ClusterURL())
	// Gossip completes the mesh: n2 and n3 learn of each other through n1.
	waitRoutes(t, n2, 2)
	waitRoutes(t, n3, 2)

	sub, err := n3.Conn().SubscribeSync("mycel.test")
	if err != nil {
		t.Fatal(err)
	}
	n3.Conn().Flush()
	// Interest propagates over routes asynchronously; publish until it arrives.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n2.Conn().Publish("mycel.test", []byte("hello"))
		if msg, err := sub.NextMsg(100 * time.Millisecond); err == nil {
			if string(msg.Data) != "hello" {
				t.Fatalf("got %q", msg.Data)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("message from n2 never reached n3")
		}
	}
}

// TestAddRoutes: a server started alone (its bootstrap peers were down)
// joins the cluster once it is given a route, and adding the route again
// changes nothing.
func TestAddRoutes(t *testing.T) {
	a, err := ca.Init(filepath.Join(t.TempDir(), "ca"), "fabric.test")
	if err != nil {
		t.Fatal(err)
	}
	n1 := startBus(t, a, "n1")
	n2 := startBus(t, a, "n2", n1.ClusterURL())
	alone := startBus(t, a, "alone")
	if err := alone.AddRoutes([]string{n1.ClusterURL()}); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, alone, 2)
	waitRoutes(t, n2, 2)
	if err := alone.AddRoutes([]string{n1.ClusterURL()}); err != nil {
		t.Fatal(err)
	}
	if err := alone.AddRoutes([]string{"::"}); err == nil {
		t.Fatal("a malformed route was accepted")
	}
}

func TestClientsNeedAnSVIDOfTheTrustDomain(t *testing.T) {
	a, _ := ca.Init(filepath.Join(t.TempDir(), "ca"), "fabric.test")
	other, _ := ca.Init(filepath.Join(t.TempDir(), "other"), "fabric.test")
	b := startBus(t, a, "n1")
	td := a.TrustDomain()
	nodeAuth := tlsconf.Nodes(td)

	user, _ := ca.UserID(td, "alice")
	if c, err := nats.Connect(b.ClientURL(), nats.Secure(tlsconf.Client(svidFor(t, a, user), a.Bundle(), nodeAuth))); err != nil {
		t.Fatalf("member of the trust domain refused: %v", err)
	} else {
		c.Close()
	}
	forged, _ := ca.NodeID(td, "n9")
	if c, err := nats.Connect(b.ClientURL(), nats.Secure(tlsconf.Client(svidFor(t, other, forged), a.Bundle(), nodeAuth)), nats.MaxReconnects(0), nats.Timeout(3*time.Second)); err == nil {
		c.Close()
		t.Fatal("a certificate from another CA connected")
	}
	// A node whose SVID expired (it could not renew) cannot connect.
	expired := a.WithClock(func() time.Time { return time.Now().Add(-48 * time.Hour) })
	n2, _ := ca.NodeID(td, "n2")
	if c, err := nats.Connect(b.ClientURL(), nats.Secure(tlsconf.Client(svidFor(t, expired, n2), a.Bundle(), nodeAuth)), nats.MaxReconnects(0), nats.Timeout(3*time.Second)); err == nil {
		c.Close()
		t.Fatal("a client with an expired SVID connected")
	}
	if c, err := nats.Connect(b.ClientURL(), nats.Secure(&tls.Config{InsecureSkipVerify: true}), nats.MaxReconnects(0), nats.Timeout(3*time.Second)); err == nil {
		c.Close()
		t.Fatal("a client without a certificate connected")
	}
	if c, err := nats.Connect("nats://"+b.srv.Addr().String(), nats.MaxReconnects(0), nats.Timeout(3*time.Second)); err == nil {
		c.Close()
		t.Fatal("a plaintext client connected")
	}
	// Over the network, the in-process client's token is worth nothing: a
	// plaintext client presenting the very token is refused, and so is an
	// in-process client with another token.
	local := b.opts.CustomClientAuthentication.(*spiffeAuth).local
	if c, err := nats.Connect("nats://"+b.srv.Addr().String(), nats.Token(local), nats.MaxReconnects(0), nats.Timeout(3*time.Second)); err == nil {
		c.Close()
		t.Fatal("a plaintext client with the node's local token connected")
	}
	if c, err := nats.Connect("", nats.InProcessServer(b.srv), nats.Token("guess"), nats.MaxReconnects(0), nats.Timeout(3*time.Second)); err == nil {
		c.Close()
		t.Fatal("an in-process client with a wrong token connected")
	}
	if !b.Conn().IsConnected() {
		t.Fatal("the node's own in-process client is not connected")
	}
}
