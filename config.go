package mycel

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/mycelfabric/mycel/machineplane/host"
	"github.com/mycelfabric/mycel/machineplane/membership"
	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// Version is Mycel's version.
const Version = "0.1.0"

// Config configures a Node.
type Config struct {
	// Name is the node's name in the API (a DNS-1123 subdomain); default the
	// host name, lower-cased.
	Name string
	// DataDir keeps the node's identity key, object store and pid/url files.
	DataDir string
	// CADir holds the trust domain's CA (`mycel ca init`); a node with it
	// issues its own SVID and those of joining machines.
	CADir string
	// Join is a join token (`mycel token create`) for a node without the CA;
	// once joined, the node keeps its credentials and restarts without it.
	Join string
	// APIAddr is the HTTPS API's listen address, HOST:PORT; default
	// 127.0.0.1:6443.
	APIAddr string
	// PolicyDir replaces the embedded default policies when set.
	PolicyDir string
	// PodmanSocket is the Podman API socket; default the system socket,
	// started with `podman system service` when nothing listens on it.
	PodmanSocket string
	// Labels are extra node labels.
	Labels map[string]string
	// P2PListen are the libp2p listen multiaddrs; default TCP and QUIC on
	// the API's host, any free port.
	P2PListen []string
	// Bootstrap are multiaddrs (ending in /p2p/<peerID>) of nodes to join
	// the DHT through.
	Bootstrap []string
	// RuntimeName selects the container runtime: "podman" (the default)
	// or "sim", which runs nothing and only models capacity, for scale
	// simulations (see workloadplane/runtime/sim). sim is never chosen
	// unless named.
	RuntimeName string
	// Runtime overrides the runtime (tests only).
	Runtime rt.Runtime
	// Capacity overrides what the node advertises and bids with (cpu,
	// memory, pods); unset resources are measured.
	Capacity corev1.ResourceList
	// PlacementSample is d, how many candidates an owner tenders one
	// replica to; zero means 3.
	PlacementSample int
	// Logger; nil logs text to stderr at Info.
	Logger *slog.Logger
	// HeartbeatInterval is how often the node checks its Node status
	// (runtime health, labels) and writes what changed; an unchanged
	// status is rewritten every agent.StatusReportEvery. Default 10s.
	HeartbeatInterval time.Duration
	// FailureDetection names the failure detector's timing, one of
	// membership.Presets ("lan", the default; "wan"; "local").
	FailureDetection string
	// MembershipTick, if set, replaces the preset's tick (tests slow the
	// detector down with it).
	MembershipTick time.Duration
	// AntiEntropyInterval is how often the store compares itself with a
	// peer's; zero means 5 seconds.
	AntiEntropyInterval time.Duration
	// SVIDTTL is the lifetime of the node's certificates; they are renewed
	// at two thirds of it. Default 24h.
	SVIDTTL time.Duration
	// Now is the clock every component reads; nil means time.Now (tests
	// inject another).
	Now func() time.Time
}

// Validate fills defaults and rejects contradictions.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("config: a data dir is required (--data-dir)")
	}
	if c.CADir != "" && c.Join != "" {
		return errors.New("config: --ca-dir and --join exclude each other: a node that holds the CA issues its own SVID")
	}
	if c.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("config: no --name and no host name: %w", err)
		}
		c.Name = strings.ToLower(h)
	}
	if errs := validation.IsDNS1123Subdomain(c.Name); len(errs) > 0 {
		return fmt.Errorf("config: node name %q: %s (use --name with lower-case letters, digits, '-' and '.')", c.Name, strings.Join(errs, "; "))
	}
	if c.APIAddr == "" {
		c.APIAddr = "127.0.0.1:6443"
	}
	apiHost, _, err := net.SplitHostPort(c.APIAddr)
	if err != nil {
		return fmt.Errorf("config: API address %q: %w (use HOST:PORT)", c.APIAddr, err)
	}
	if len(c.P2PListen) == 0 {
		c.P2PListen = host.DefaultListen(apiHost)
	}
	for k, v := range c.Labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("config: label key %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return fmt.Errorf("config: label %s value %q: %s", k, v, strings.Join(errs, "; "))
		}
	}
	if c.FailureDetection == "" {
		c.FailureDetection = membership.DefaultPreset
	}
	if _, ok := membership.Presets[c.FailureDetection]; !ok {
		return fmt.Errorf("config: failure detection %q: want lan, wan or local", c.FailureDetection)
	}
	switch c.RuntimeName {
	case "":
		c.RuntimeName = RuntimePodman
	case RuntimePodman, RuntimeSim:
	default:
		return fmt.Errorf("config: runtime %q: want %q or %q (sim only models capacity, for scale simulations)", c.RuntimeName, RuntimePodman, RuntimeSim)
	}
	for k, q := range c.Capacity {
		if k != corev1.ResourceCPU && k != corev1.ResourceMemory && k != corev1.ResourcePods {
			return fmt.Errorf("config: capacity %q: only cpu, memory and pods can be set", k)
		}
		if q.Sign() <= 0 {
			return fmt.Errorf("config: capacity %s=%s must be positive", k, q.String())
		}
	}
	if c.PlacementSample < 0 {
		return fmt.Errorf("config: placement sample %d must be positive (0 means the default, 3)", c.PlacementSample)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 10 * time.Second
	}
	if c.SVIDTTL == 0 {
		c.SVIDTTL = 24 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("config: data dir: %w", err)
	}
	c.DataDir = abs
	return nil
}

// Runtimes a node can use.
const (
	RuntimePodman = "podman"
	RuntimeSim    = "sim"
)
