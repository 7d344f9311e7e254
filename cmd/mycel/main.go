// Command mycel is the Mycel daemon and its tools: every machine of a fabric
// runs `mycel node`; `mycel up` runs a local fabric with embedded defaults.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "mycel",
		Short:         "Mycel: a decentralized compute fabric that kubectl drives",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(benchCmd(), caCmd(), kubeconfigCmd(), nodeCmd(), nodesCmd(), statusCmd(), tokenCmd(), upCmd(), versionCmd())
	return root
}
