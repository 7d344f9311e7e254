package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mycelfabric/mycel/localfabric"
)

func upCmd() *cobra.Command {
	var cfg localfabric.Config
	var quiet bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a local fabric with embedded defaults, ready for kubectl",
		Long: `Run a local fabric in the foreground: a trust domain (created on first use), node-1 (holding
the CA), nodes 2..N (joining with tokens, through the DHT), each its own mycel node process, and a
kubeconfig for user "admin" with one context per node. It prints "ready: export KUBECONFIG=..." once
kubectl can use the fabric. Killing a node (kill -9 $(cat DIR/nodes/node-2/mycel.pid)) leaves the
others serving, so self-healing can be watched; running mycel up again restarts it.
On SIGINT or SIGTERM it stops every node and removes the containers they started.
Each node keeps its state in DIR/nodes/NAME/, with mycel.pid, api.url and node.log.`,
		Example: `  mycel up
  mycel up --dir /tmp/fabric --demo
  mycel up --nodes 3 && kubectl --context node-3 get nodes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Dir == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					return err
				}
				cfg.Dir = filepath.Join(home, ".mycel")
			}
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)).With("component", "up")
			if !quiet {
				cfg.Log = cmd.ErrOrStderr()
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			f, err := localfabric.Up(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ready: export KUBECONFIG=%s\n", f.Kubeconfig)
			<-ctx.Done()
			fmt.Fprintln(cmd.OutOrStdout(), "stopping: removing the fabric's containers")
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			return f.Close(cctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Dir, "dir", "", "directory for the CA, nodes and kubeconfig (default ~/.mycel)")
	f.StringVar(&cfg.APIAddr, "api-addr", "127.0.0.1:6443", "API address of node-1; node-i listens on 127.0.0.i at the same port")
	f.IntVar(&cfg.Nodes, "nodes", 1, "how many nodes to run; each has a kubeconfig context named after it")
	f.BoolVar(&cfg.Demo, "demo", false, "deploy the demo image ("+localfabric.DemoImage+", built by `make image`)")
	f.StringSliceVar(&cfg.NodeArgs, "node-args", nil, "further `mycel node` flags for every node, e.g. --node-args=--runtime=sim")
	f.BoolVar(&quiet, "quiet", false, "do not copy the nodes' logs to stderr (they are in DIR/nodes/NAME/node.log)")
	return cmd
}
