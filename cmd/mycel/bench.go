package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mycelfabric/mycel/workloadplane/sched/schedsim"
)

func benchCmd() *cobra.Command {
	var cfg schedsim.Config
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Simulate placement at scale",
		Long: `Simulate placement in one process: simulated nodes (capacity and the pods placed on them;
nothing runs) evaluate the embedded placement policy and answer real owners over an embedded NATS
server with signed envelopes. It reports placements per second, messages
per placement, CPU per placement (the whole process's) and negotiation latency for each fabric size. Results: docs/benchmarks.md.`,
		Example: `  mycel bench --nodes 10,100,1000 --pods 1000`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			w := cmd.OutOrStdout()
			const row = "%-6v %-7v %-9v %-13v %-19v %-14v %-9v %-9v %v\n"
			fmt.Fprintf(w, row, "NODES", "PLACED", "UNPLACED", "PLACEMENTS/S", "MESSAGES/PLACEMENT", "CPU/PLACEMENT", "P50", "P99", "MOST PODS OF ONE WORKLOAD ON ONE NODE")
			for _, n := range cfg.Nodes {
				c := cfg
				c.Nodes = []int{n}
				res, err := schedsim.Run(ctx, c)
				if err != nil {
					return err
				}
				r := res[0]
				fmt.Fprintf(w, row, r.Nodes, r.Placed, r.Unplaced, fmt.Sprintf("%.0f", r.PerSecond), fmt.Sprintf("%.2f", r.MessagesPerPlacement),
					r.CPUPerPlacement.Round(time.Microsecond),
					r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.MaxPerNode)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntSliceVar(&cfg.Nodes, "nodes", []int{10, 100, 1000}, "fabric sizes to simulate")
	f.IntVar(&cfg.Pods, "pods", 1000, "pods to place at each size")
	f.IntVar(&cfg.Replicas, "replicas", 10, "pods per workload (one owner each)")
	f.IntVar(&cfg.Sample, "sample", 3, "candidates tendered per pod (d)")
	f.IntVar(&cfg.Owners, "owners", 0, "owners placing at once (default 4 per CPU)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof reads it)")
	return cmd
}
