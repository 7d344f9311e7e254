package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mycelfabric/mycel"
)

func statusCmd() *cobra.Command {
	var kubeconfig, context string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the fabric as one node sees it: members, their state and when each was last heard",
		Long: `Ask the node behind a kubeconfig context for its view of the fabric (GET /api/cluster/status):
its peer ID, logical clock, object count, bus routes, and every member it knows with its state
(Alive, Suspect, Dead, Left) and when it last heard from it.`,
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
			st, err := mycel.FetchStatus(cmd.Context(), data, context)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "node %s (%s)\n  state %s, settled %v, %d live members, %d objects, %d bus routes\n  clock %s\n\n",
				st.Node, st.PeerID, st.State, st.Settled, st.Members, st.Objects, st.BusRoutes, st.Clock)
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tSTATE\tLAST SEEN\tPEER ID")
			for _, p := range st.Peers {
				seen := "never"
				if !p.LastSeen.IsZero() {
					seen = st.GeneratedAt.Sub(p.LastSeen).Round(time.Millisecond).String() + " ago"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", p.Name, p.State, seen, p.ID)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig to use (default $KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&context, "context", "", "kubeconfig context (default the current one)")
	return cmd
}
