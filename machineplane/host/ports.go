package host

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/multiformats/go-multiaddr"
)

// PortsFile keeps the ports a node picked on its first start.
const PortsFile = "ports.json"

// Ports are the ports a node listens on besides its API. A node started
// with free ports (port 0) keeps the ones it got and asks for them again
// after a restart, so that peers that knew it (their NATS routes, their DHT
// routing tables) find it at the same address.
type Ports struct {
	P2PTCP     int `json:"p2pTCP,omitempty"`
	P2PQUIC    int `json:"p2pQUIC,omitempty"`
	BusClient  int `json:"busClient,omitempty"`
	BusCluster int `json:"busCluster,omitempty"`
}

// LoadPorts reads the ports of an earlier start; none on a first start or
// if the file is unreadable (the node then picks free ports again).
func LoadPorts(dataDir string) Ports {
	var p Ports
	if b, err := os.ReadFile(filepath.Join(dataDir, PortsFile)); err == nil {
		json.Unmarshal(b, &p)
	}
	return p
}

// Save writes the ports to dataDir.
func (p Ports) Save(dataDir string) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dataDir, PortsFile), append(b, '\n'), 0o644)
}

// Listen replaces port 0 in libp2p listen addresses with the kept ports.
func (p Ports) Listen(addrs []string) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		switch {
		case p.P2PTCP != 0 && strings.HasSuffix(a, "/tcp/0"):
			a = strings.TrimSuffix(a, "0") + strconv.Itoa(p.P2PTCP)
		case p.P2PQUIC != 0 && strings.HasSuffix(a, "/udp/0/quic-v1"):
			a = strings.TrimSuffix(a, "/udp/0/quic-v1") + "/udp/" + strconv.Itoa(p.P2PQUIC) + "/quic-v1"
		}
		out[i] = a
	}
	return out
}

// ListenPorts reads the TCP and QUIC ports off listen addresses.
func ListenPorts(addrs []multiaddr.Multiaddr) (tcp, quic int, err error) {
	for _, a := range addrs {
		if v, err := a.ValueForProtocol(multiaddr.P_TCP); err == nil && tcp == 0 {
			tcp, _ = strconv.Atoi(v)
		}
		if _, err := a.ValueForProtocol(multiaddr.P_QUIC_V1); err == nil && quic == 0 {
			v, _ := a.ValueForProtocol(multiaddr.P_UDP)
			quic, _ = strconv.Atoi(v)
		}
	}
	if tcp == 0 && quic == 0 {
		return 0, 0, errors.New("no TCP or QUIC listen address")
	}
	return tcp, quic, nil
}
