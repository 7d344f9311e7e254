package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mycelfabric/mycel"
	"github.com/mycelfabric/mycel/securityplane/ca"
)

func statusCmd() *cobra.Command {
	var kubeconfig, context string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the fabric as one node sees it: members, their state and when each was last heard",
		Long: `Ask the node behind a kubeconfig context for its view of the fabric (GET /api/cluster/status):
its peer ID, logical clock, object count, bus routes, and every member it knows with its state
(Alive, Suspect, Dead, Left), when it last heard from it and the round-trip time of its probes.`,
		Example: `  mycel status
  mycel status --context node-2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kubeconfig == "" {
				kubeconfig = clientcmd.NewDefaultClientConfigLoadingRules().GetDefaultFilename()
			}
			data, err := os.ReadFile(kubeconfig)
			if err != nil {
				return fmt.Errorf("%w (set KUBECONFIG or pass --kubeconfig; `mycel up` prints the path)", err)
			}
			st, err := fetchStatus(cmd.Context(), data, context)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "node %s (%s)\n  state %s, settled %v, %d live members, %d objects, %d bus routes\n  clock %s\n\n",
				st.Node, st.PeerID, st.State, st.Settled, st.Members, st.Objects, st.BusRoutes, st.Clock)
			if st.JoinError != "" {
				fmt.Fprintf(out, "  not joined: cannot reach any peer to join yet (retrying): %s\n\n", st.JoinError)
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tSTATE\tLAST SEEN\tRTT\tPEER ID")
			for _, p := range st.Peers {
				seen := "never"
				if !p.LastSeen.IsZero() {
					seen = st.GeneratedAt.Sub(p.LastSeen).Round(time.Millisecond).String() + " ago"
				}
				rtt := "-"
				if p.RTT > 0 {
					rtt = p.RTT.Round(10 * time.Microsecond).String()
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.State, seen, rtt, p.ID)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig to use (default $KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&context, "context", "", "kubeconfig context (default the current one)")
	return cmd
}

// fetchStatus asks the node behind a kubeconfig context ("" for the current
// one) for the fabric as it sees it.
func fetchStatus(ctx context.Context, kubeconfig []byte, context string) (*mycel.ClusterStatus, error) {
	cfg, err := ca.ClientConfig(kubeconfig, context)
	if err != nil {
		return nil, err
	}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	client.Timeout = 10 * time.Second
	url := strings.TrimSuffix(cfg.Host, "/") + mycel.StatusPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	var st mycel.ClusterStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return &st, nil
}
