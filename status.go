package mycel

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/mycelfabric/mycel/machineplane/membership"
)

// StatusPath serves ClusterStatus to authenticated clients.
const StatusPath = "/api/cluster/status"

// ClusterStatus is what /api/cluster/status and `mycel status` show: the
// fabric as this node sees it.
type ClusterStatus struct {
	Node    string `json:"node"`
	PeerID  string `json:"peerID"`
	State   string `json:"state"`
	Settled bool   `json:"settled"`
	// JoinError says why the node has not reached any peer to join yet
	// (it retries); empty once it has.
	JoinError   string            `json:"joinError,omitempty"`
	Clock       string            `json:"clock"`
	Objects     int               `json:"objects"`
	Members     int               `json:"liveMembers"`
	Peers       []membership.Peer `json:"peers"`
	BusRoutes   int               `json:"busRoutes"`
	GeneratedAt time.Time         `json:"generatedAt"`
}

// Status reports the fabric as this node sees it.
func (n *Node) Status() ClusterStatus {
	st := ClusterStatus{
		Node: n.cfg.Name, PeerID: n.PeerID(), State: "Alive", Settled: n.owners.Settled(),
		Clock: n.store.Clock().Last().String(), Objects: n.store.Len(), Members: len(n.members.Live()),
		Peers: n.members.Peers(), BusRoutes: n.bus.Routes(), GeneratedAt: n.cfg.Now().UTC(),
	}
	if err := n.join.pending(); err != nil {
		st.JoinError = err.Error()
	}
	if st.Peers == nil {
		st.Peers = []membership.Peer{}
	}
	return st
}

func (n *Node) serveStatus(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "only GET", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(n.Status())
}
