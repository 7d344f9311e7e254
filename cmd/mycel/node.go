package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mycelfabric/mycel"
)

func nodeCmd() *cobra.Command {
	var cfg mycel.Config
	var labels, capacity, pprofAddr string
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a Mycel node",
		Long: `Run a Mycel node: its Kubernetes-compatible API, its object store and its pods under Podman.
The node stops on SIGINT or SIGTERM; its containers keep running and are re-adopted when it starts again.`,
		Example: `  mycel ca init --trust-domain example.org --dir ca
  mycel node --name node-1 --data-dir data/node-1 --api-addr 127.0.0.1:6443 --ca-dir ca --labels zone=a
  mycel node --name node-2 --data-dir data/node-2 --api-addr 127.0.0.2:6443 --join "$(mycel token create --ca-dir ca)"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			if cfg.Capacity, err = parseCapacity(capacity); err != nil {
				return err
			}
			if pprofAddr != "" {
				if err := servePprof(pprofAddr); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			n, err := mycel.Start(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s serving %s\n", n.Name(), n.URL())
			<-ctx.Done()
			return n.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Name, "name", "", "node name (DNS-1123; default: the host name)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for the node's key, store and state (required)")
	f.StringVar(&cfg.APIAddr, "api-addr", "127.0.0.1:6443", "HOST:PORT the Kubernetes-compatible API listens on")
	f.StringVar(&cfg.CADir, "ca-dir", "", "trust domain CA directory from `mycel ca init` (this node then issues SVIDs)")
	f.StringVar(&cfg.PolicyDir, "policy-dir", "", "directory of Rego policies replacing the embedded defaults")
	f.StringVar(&cfg.PodmanSocket, "podman-socket", "", "Podman API socket (default: the system socket, started if needed)")
	f.StringVar(&labels, "labels", "", "extra node labels, k=v,k2=v2")
	f.StringSliceVar(&cfg.P2PListen, "p2p-addr", nil, "libp2p listen multiaddrs (default: TCP and QUIC on the API host, any port)")
	f.StringSliceVar(&cfg.Bootstrap, "bootstrap", nil, "multiaddrs of nodes to join the DHT through, ending in /p2p/<peerID>")
	f.StringVar(&cfg.Join, "join", "", "join token from `mycel token create` (for a node without --ca-dir)")
	f.StringVar(&cfg.RuntimeName, "runtime", mycel.RuntimePodman, "container runtime: podman, or sim (runs nothing; scale simulations only)")
	f.StringVar(&capacity, "capacity", "", "advertise this capacity instead of the machine's, e.g. cpu=2,memory=4Gi,pods=50")
	f.StringVar(&cfg.FailureDetection, "failure-detection", "lan", "failure detector timing: lan, wan (probes every second, suspicions of 2-10 s) or local (every node on one machine)")
	f.IntVar(&cfg.PlacementSample, "placement-sample", 3, "candidates an owner tenders each replica to (d)")
	f.StringVar(&pprofAddr, "pprof-addr", "", "serve Go's profiles (net/http/pprof) on this HOST:PORT, unauthenticated: for debugging only, on loopback")
	cmd.MarkFlagRequired("data-dir")
	return cmd
}

// servePprof serves /debug/pprof/ on addr for as long as the process runs.
func servePprof(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--pprof-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go http.Serve(ln, mux)
	return nil
}
