package mycel

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mycelfabric/mycel/machineplane/discovery"
	"github.com/mycelfabric/mycel/machineplane/membership"
	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/securityplane/datakey"
	"github.com/mycelfabric/mycel/workloadplane/runtime/runtimetest"
)

func startTestNode(t *testing.T, caDir, name string, bootstrap []string, opts ...func(*Config)) *Node {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("MYCEL_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := Config{
		Name: name, DataDir: filepath.Join(t.TempDir(), name), CADir: caDir, APIAddr: "127.0.0.1:0",
		Bootstrap: bootstrap, Runtime: runtimetest.New(time.Now, "localhost/mycel-demo:0.1"), Logger: logger,
		Labels: map[string]string{"topology.kubernetes.io/zone": "z-" + name},
		// Several nodes in one process under -race share two cores: probe
		// less often than a real node, or scheduling delays read as deaths.
		MembershipTick: 100 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// twoNodes starts node-a holding a new CA and node-b bootstrapped from it.
func twoNodes(t *testing.T) (caDir string, a, b *Node) {
	t.Helper()
	caDir = filepath.Join(t.TempDir(), "ca")
	if _, err := ca.Init(caDir, "fabric.test"); err != nil {
		t.Fatal(err)
	}
	a = startTestNode(t, caDir, "node-a", nil)
	return caDir, a, startTestNode(t, caDir, "node-b", a.P2PAddrs())
}

// TestNodesFindEachOtherInTheDHT starts two nodes, the second bootstrapped
// from the first, and looks each one's signed record up from the other.
func TestNodesFindEachOtherInTheDHT(t *testing.T) {
	_, a, b := twoNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, pair := range [][2]*Node{{a, b}, {b, a}} {
		from, of := pair[0], pair[1]
		// Each node publishes at start; publish again to not race the first announce.
		if err := of.records.Publish(ctx); err != nil {
			t.Fatal(err)
		}
		id, _ := peer.Decode(of.PeerID())
		r, err := from.dht.Lookup(ctx, id)
		if err != nil {
			t.Fatalf("%s looking up %s: %v", from.Name(), of.Name(), err)
		}
		if r.Name != of.Name() || r.APIURL != of.URL() || r.Zone != "z-"+of.Name() || r.Versions["runtime"] != "fake/1.0" {
			t.Fatalf("record of %s: %+v", of.Name(), r)
		}
		provs, err := from.dht.FindProviders(ctx, "zone", "z-"+of.Name(), 0)
		if err != nil || len(provs) != 1 || provs[0].ID != id {
			t.Fatalf("zone=z-%s providers: %v %v", of.Name(), provs, err)
		}
		if r.NATSURL != of.bus.ClusterURL() {
			t.Fatalf("record names bus %q, want %q", r.NATSURL, of.bus.ClusterURL())
		}
	}
	// b routed its bus to a's, found through a's record.
	sub, err := a.bus.Conn().SubscribeSync("mycel.test")
	if err != nil {
		t.Fatal(err)
	}
	a.bus.Conn().Flush()
	for {
		b.bus.Conn().Publish("mycel.test", []byte("over the route"))
		if msg, err := sub.NextMsg(100 * time.Millisecond); err == nil && string(msg.Data) == "over the route" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("b's bus never reached a's (routes: %d)", b.bus.Routes())
		}
	}
}

func TestFindNodesByCapability(t *testing.T) {
	caDir, a, b := twoNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range []*Node{a, b} {
		if err := n.records.Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	bundle, err := ca.LoadBundle(caDir)
	if err != nil {
		t.Fatal(err)
	}
	for where, want := range map[string]string{
		"runtime=fake/1.0": "node-a,node-b",
		"zone=z-node-b":    "node-b",
		"runtime=fake,topology.kubernetes.io/zone=z-node-a": "node-a",
		"runtime=podman/5.8": "",
	} {
		filters, err := discovery.ParseWhere(where)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := discovery.FindNodes(ctx, bundle, b.P2PAddrs(), filters)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		var names []string
		for _, r := range recs {
			names = append(names, r.Name)
		}
		if got := strings.Join(names, ","); got != want {
			t.Errorf("--where %s: %q, want %q", where, got, want)
		}
	}
}

// TestJoinWithToken: a node without the CA joins with a token, publishes a
// record that the CA holder verifies, and restarts without the token.
func TestJoinWithToken(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	authority, err := ca.Init(caDir, "fabric.test")
	if err != nil {
		t.Fatal(err)
	}
	a := startTestNode(t, caDir, "node-a", nil)
	tok, err := authority.CreateToken(caDir, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "node-b")
	start := func(join string) (*Node, error) {
		return Start(context.Background(), Config{Name: "node-b", DataDir: dataDir, Join: join, APIAddr: "127.0.0.1:0",
			Runtime: runtimetest.New(time.Now), Logger: slog.New(slog.DiscardHandler)})
	}
	b, err := start(tok.String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.records.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	id, _ := peer.Decode(b.PeerID())
	if r, err := a.dht.Lookup(ctx, id); err != nil || r.Name != "node-b" {
		t.Fatalf("CA holder cannot verify the joined node's record: %v", err)
	}
	// The joined node holds the fabric's data keys: it opens Secrets the
	// CA holder sealed.
	sealed, err := a.creds.DataKeys().Seal([]byte("s3cret"), []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.creds.DataKeys().Open(sealed, []byte("k")); err != nil || string(got) != "s3cret" {
		t.Fatalf("joined node opens a sealed value: %q, %v", got, err)
	}
	// Renewal at an issuer works with the joined credentials, and brings a
	// data key rotated in since.
	rotated, err := ca.RotateDataKey(caDir, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	before := b.creds.Certificate()
	if err := b.creds.Renew(ctx); err != nil || b.creds.Certificate() == before || b.creds.Certificate().NotAfter.Before(before.NotAfter) {
		t.Fatalf("renew: %v", err)
	}
	if keys := b.creds.DataKeys().Keys(); len(keys) != 2 || keys[1].ID != rotated.ID {
		t.Fatalf("after renewal the node holds data keys %v, want 2 with %s", keys, rotated.ID)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, datakey.File)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("data keys file: %v, %v; want mode 0600", fi, err)
	}
	b.Close()
	// The token is used up, but the node restarts from its kept credentials
	// (data keys included), with or without the (spent) token on its
	// command line.
	for _, tokArg := range []string{"", tok.String()} {
		b, err = start(tokArg)
		if err != nil {
			t.Fatalf("restart (with token: %v): %v", tokArg != "", err)
		}
		if len(b.creds.DataKeys().Keys()) != 2 {
			t.Fatalf("restarted node holds %d data keys, want 2", len(b.creds.DataKeys().Keys()))
		}
		b.Close()
	}
	if _, err := Start(context.Background(), Config{Name: "node-c", DataDir: filepath.Join(t.TempDir(), "c"), Join: tok.String(), APIAddr: "127.0.0.1:0",
		Runtime: runtimetest.New(time.Now), Logger: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "used up") {
		t.Fatalf("second machine with a one-use token: %v", err)
	}
	if _, err := Start(context.Background(), Config{Name: "node-d", DataDir: filepath.Join(t.TempDir(), "d"), APIAddr: "127.0.0.1:0",
		Runtime: runtimetest.New(time.Now), Logger: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "--join") {
		t.Fatalf("node without CA or token: %v", err)
	}
}

// aloneConfig is the Config of a node with a CA of its own, for starting
// and restarting it on one data dir.
func aloneConfig(t *testing.T) Config {
	t.Helper()
	caDir := filepath.Join(t.TempDir(), "ca")
	if _, err := ca.Init(caDir, "fabric.test"); err != nil {
		t.Fatal(err)
	}
	return Config{Name: "node-a", DataDir: filepath.Join(t.TempDir(), "a"), CADir: caDir, APIAddr: "127.0.0.1:0",
		Runtime: runtimetest.New(time.Now, "localhost/mycel-demo:0.1"), Logger: slog.New(slog.DiscardHandler)}
}

// TestRestartKeepsPorts: a node restarted on the same data dir listens on
// the ports of its first start, so peers that knew it find it again; if one
// is taken it picks another.
func TestRestartKeepsPorts(t *testing.T) {
	cfg := aloneConfig(t)
	start := func() *Node {
		t.Helper()
		n, err := Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := start()
	p2p, route := strings.Join(n.P2PAddrs(), " "), n.bus.ClusterURL()
	n.Close()

	n = start()
	if got := strings.Join(n.P2PAddrs(), " "); got != p2p {
		t.Errorf("libp2p addresses after a restart: %s, want %s", got, p2p)
	}
	if got := n.bus.ClusterURL(); got != route {
		t.Errorf("bus route after a restart: %s, want %s", got, route)
	}
	n.Close()

	ln, err := net.Listen("tcp", strings.TrimPrefix(route, "nats-route://"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	n = start()
	defer n.Close()
	if got := n.bus.ClusterURL(); got == route {
		t.Errorf("bus route %s while something else listens there", got)
	}
}

// TestSecondNodeOnADataDirInUseFails: a node started on the data dir of a
// running one fails before it touches anything, saying why; the running
// node keeps its files and keeps serving.
func TestSecondNodeOnADataDirInUseFails(t *testing.T) {
	cfg := aloneConfig(t)
	first, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := Start(context.Background(), cfg)
	if err == nil {
		second.Close()
		t.Fatal("a second node started on a data dir in use")
	}
	if want := fmt.Sprintf("in use by another mycel node (pid %d)", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q, want it to say %q", err, want)
	}
	if url, err := os.ReadFile(filepath.Join(cfg.DataDir, URLFile)); err != nil || strings.TrimSpace(string(url)) != first.URL() {
		t.Fatalf("the running node's %s: %q, %v", URLFile, url, err)
	}
	if err := first.objs.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "still-here"}}); err != nil {
		t.Fatalf("the running node after the refused start: %v", err)
	}
	first.Close()
	again, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("restart once the first has stopped: %v", err)
	}
	again.Close()
}

// TestNodeStartsWhileItsPeersAreDown: a node whose peers to join are all
// down starts anyway, says so in /readyz and its status, and joins them
// once one is back.
func TestNodeStartsWhileItsPeersAreDown(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	authority, err := ca.Init(caDir, "fabric.test")
	if err != nil {
		t.Fatal(err)
	}
	dataA := filepath.Join(t.TempDir(), "node-a")
	keepData := func(c *Config) { c.DataDir = dataA }
	a := startTestNode(t, caDir, "node-a", nil, keepData)
	addrs := a.P2PAddrs()
	a.Close()

	b := startTestNode(t, caDir, "node-b", addrs)
	if st := b.Status(); !strings.Contains(st.JoinError, "no bootstrap peer answered") {
		t.Fatalf("status of a node that reached no peer: join error %q", st.JoinError)
	}
	body, err := kubernetes.NewForConfigOrDie(restConfig(t, b, authority)).Discovery().RESTClient().
		Get().AbsPath("/readyz").Param("verbose", "").DoRaw(context.Background())
	if err == nil || !strings.Contains(string(body), "[-]joined failed") {
		t.Fatalf("/readyz of a node that reached no peer: %v\n%s", err, body)
	}

	a = startTestNode(t, caDir, "node-a", nil, keepData) // on the ports of its first start
	waitFor(t, b, 90*time.Second, func() error {
		if err := b.join.pending(); err != nil {
			return err
		}
		if st, _ := b.members.State(a.PeerID()); st != membership.Alive {
			return fmt.Errorf("node-b holds node-a %s", st)
		}
		if st, _ := a.members.State(b.PeerID()); st != membership.Alive {
			return fmt.Errorf("node-a holds node-b %s", st)
		}
		return nil
	})
}

// TestReadyzSaysWhatTheNodeIsWaitingFor: a node's /readyz passes once it
// has settled, with its store, bus and runtime checks listed.
func TestReadyzSaysWhatTheNodeIsWaitingFor(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	authority, err := ca.Init(caDir, "fabric.test")
	if err != nil {
		t.Fatal(err)
	}
	n := startTestNode(t, caDir, "node-a", nil)
	rc := kubernetes.NewForConfigOrDie(restConfig(t, n, authority)).Discovery().RESTClient()
	var body string
	waitFor(t, n, 30*time.Second, func() error {
		b, err := rc.Get().AbsPath("/readyz").Param("verbose", "").DoRaw(context.Background())
		body = string(b)
		return err
	})
	for _, check := range []string{"ping", "settled", "joined", "store", "bus", "runtime"} {
		if !strings.Contains(body, "[+]"+check+" ok") {
			t.Errorf("/readyz?verbose lacks %s:\n%s", check, body)
		}
	}
}
