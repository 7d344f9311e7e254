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

	"k8s.io/apimachinery/pkg/util/validation"

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
	// Runtime overrides the Podman runtime (tests only).
	Runtime rt.Runtime
	// Logger; nil logs text to stderr at Info.
	Logger *slog.Logger
	// HeartbeatInterval is how often the node refreshes its Node status;
	// default 10s.
	HeartbeatInterval time.Duration
	// MembershipTick is the failure detector's tick; zero means 20 ms.
	MembershipTick time.Duration
	// AntiEntropyInterval is how often the store compares itself with a
	// peer's; zero means 5 seconds.
	AntiEntropyInterval time.Duration
	// SVIDTTL is the lifetime of the node's certificates; they are renewed
	// at two thirds of it. Default 24h.
	SVIDTTL time.Duration
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
		c.P2PListen = defaultP2PListen(apiHost)
	}
	for k, v := range c.Labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("config: label key %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return fmt.Errorf("config: label %s value %q: %s", k, v, strings.Join(errs, "; "))
		}
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
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("config: data dir: %w", err)
	}
	c.DataDir = abs
	return nil
}

// ParseLabels parses "k=v,k2=v2".
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}
