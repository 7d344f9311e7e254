package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mycelfabric/mycel/machineplane/discovery"
	"github.com/mycelfabric/mycel/securityplane/ca"
)

func nodesCmd() *cobra.Command {
	var where, caDir string
	var bootstrap []string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "Find nodes by capability in the DHT",
		Long: `Find the nodes that have every given capability, answered from the DHT: each node provides
arch, os, region, zone, runtime (e.g. podman/4.3 and podman), mycel (version) and its labels.
Records are verified against the trust domain's bundle.`,
		Example: `  mycel nodes --where runtime=podman/4.3,zone=a --ca-dir ca --bootstrap "$(head -1 data/node-1/p2p.addrs)"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filters, err := discovery.ParseWhere(where)
			if err != nil {
				return err
			}
			bundle, err := ca.LoadBundle(caDir)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			recs, err := discovery.FindNodes(ctx, bundle, bootstrap, filters)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(w, "NAME\tPEER\tAPI\tZONE\tRUNTIME\tMYCEL")
			for _, r := range recs {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.PeerID, r.APIURL, r.Zone, r.Versions["runtime"], r.Versions["mycel"])
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&where, "where", "", "capabilities, k=v[,k=v] (required)")
	cmd.Flags().StringVar(&caDir, "ca-dir", "", "directory holding the trust domain's bundle.pem and trust-domain (required)")
	cmd.Flags().StringSliceVar(&bootstrap, "bootstrap", nil, "a node's libp2p multiaddr ending in /p2p/<peerID> (required)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	for _, f := range []string{"where", "ca-dir", "bootstrap"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}
