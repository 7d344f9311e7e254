package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mycelfabric/mycel"
)

func upCmd() *cobra.Command {
	var cfg mycel.UpConfig
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a local fabric with embedded defaults, ready for kubectl",
		Long: `Run a local fabric in the foreground: a trust domain (created on first use), node-1 (holding
the CA), nodes 2..N (joining with tokens, through the DHT), and a kubeconfig for user "admin" with one
context per node. It prints "ready: export KUBECONFIG=..." once kubectl can use the fabric.
On SIGINT or SIGTERM it stops and removes the containers it started.
Each node keeps its state in DIR/nodes/NAME/, with mycel.pid and api.url for scripts.`,
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
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			f, err := mycel.Up(ctx, cfg)
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
	cmd.Flags().StringVar(&cfg.Dir, "dir", "", "directory for the CA, nodes and kubeconfig (default ~/.mycel)")
	cmd.Flags().StringVar(&cfg.APIAddr, "api-addr", "127.0.0.1:6443", "API address of node-1; node-i listens on 127.0.0.i at the same port")
	cmd.Flags().IntVar(&cfg.Nodes, "nodes", 1, "how many nodes to run; each has a kubeconfig context named after it")
	cmd.Flags().BoolVar(&cfg.Demo, "demo", false, "deploy the demo image ("+mycel.DemoImage+", built by `make image`)")
	return cmd
}
