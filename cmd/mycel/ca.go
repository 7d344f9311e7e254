package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/mycelfabric/mycel"
	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/securityplane/datakey"
)

func caCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ca", Short: "Manage the trust domain's certificate authority"}
	var td, dir string
	initCmd := &cobra.Command{
		Use:     "init",
		Short:   "Create a trust domain's root CA",
		Example: `  mycel ca init --trust-domain example.org --dir /etc/mycel/ca`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := ca.Init(dir, td)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created trust domain %s in %s\nCA fingerprint: %s\n", a.TrustDomain().Name(), dir, a.Fingerprint())
			return nil
		},
	}
	initCmd.Flags().StringVar(&td, "trust-domain", "", "trust domain name, e.g. example.org (required)")
	initCmd.Flags().StringVar(&dir, "dir", "", "directory to keep the CA in (required)")
	initCmd.MarkFlagRequired("trust-domain")
	initCmd.MarkFlagRequired("dir")
	cmd.AddCommand(initCmd, rotateDataKeyCmd())
	return cmd
}

func rotateDataKeyCmd() *cobra.Command {
	var dir string
	var after time.Duration
	cmd := &cobra.Command{
		Use:   "rotate-data-key",
		Short: "Add a data key that seals Secrets from a later time on",
		Long: `Adds a data key to the CA directory. Nodes fetch it with their next SVID
renewal (at most 16 hours away with 24-hour SVIDs; CA holders at once), and it
starts sealing newly written Secrets after --activate-after. Older keys are
kept, so Secrets sealed with them stay readable; to re-seal every Secret with
the new key once it is active, rewrite them:
  kubectl get secrets -A -o json | kubectl replace -f -`,
		Example: `  mycel ca rotate-data-key --dir /etc/mycel/ca`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if after < 0 {
				return fmt.Errorf("--activate-after must not be negative")
			}
			now := time.Now()
			k, err := ca.RotateDataKey(dir, now, now.Add(after))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added data key %s; it seals new Secrets from %s\n", k.ID, k.ActiveFrom.Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the CA directory (required)")
	cmd.Flags().DurationVar(&after, "activate-after", datakey.DefaultActivation, "how long until the key seals; keep it above the node SVID lifetime so every node has it by then")
	cmd.MarkFlagRequired("dir")
	return cmd
}

func kubeconfigCmd() *cobra.Command {
	var dir, user, server, out string
	var groups []string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Write a kubeconfig with a client certificate of the trust domain",
		Example: `  mycel kubeconfig --dir /etc/mycel/ca --user root --group mycel:admins --server https://127.0.0.1:6443 --out admin.kubeconfig
  mycel kubeconfig --dir /etc/mycel/ca --user alice --server https://127.0.0.1:6443 --out alice.kubeconfig
  KUBECONFIG=alice.kubeconfig kubectl get nodes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := ca.Load(dir)
			if err != nil {
				return err
			}
			data, err := a.Kubeconfig(user, groups, ttl, ca.KubeconfigContext{Name: "mycel", Server: server})
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(data)
				return err
			}
			if err := ca.WriteFile(out, data, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s for spiffe://%s/user/%s\n", out, a.TrustDomain().Name(), user)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the CA directory (required)")
	cmd.Flags().StringVar(&user, "user", "", "user name; the certificate names spiffe://TD/user/NAME (required)")
	cmd.Flags().StringVar(&server, "server", "", "API URL, e.g. https://127.0.0.1:6443 (required)")
	cmd.Flags().StringVar(&out, "out", "-", "file to write (- for stdout)")
	cmd.Flags().DurationVar(&ttl, "ttl", 30*24*time.Hour, "client certificate lifetime")
	cmd.Flags().StringSliceVar(&groups, "group", nil, "a group of the user (repeatable); the default authorization policy lets members of "+ca.AdminGroup+" do everything, and other users read all but Secrets and write where a namespace's mycel.io/writers annotation names them")
	for _, f := range []string{"dir", "user", "server"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}

func tokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage join tokens"}
	var dir string
	var ttl time.Duration
	var uses int
	create := &cobra.Command{
		Use:   "create",
		Short: "Print a join token for `mycel node --join`",
		Long: `Print a join token: the addresses of the running nodes that hold this CA, a secret, and the CA's
fingerprint (a joining machine refuses an issuer whose CA does not match it). A node that holds the
CA must be running.`,
		Example: `  mycel token create --ca-dir ca --ttl 1h --uses 3`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := ca.Load(dir)
			if err != nil {
				return err
			}
			tok, err := a.CreateToken(dir, ttl, uses)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok.String())
			return nil
		},
	}
	create.Flags().StringVar(&dir, "ca-dir", "", "the CA directory (required)")
	create.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	create.Flags().IntVar(&uses, "uses", 1, "how many machines may join with it")
	create.MarkFlagRequired("ca-dir")
	cmd.AddCommand(create)
	return cmd
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Mycel's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "mycel", mycel.Version)
		},
	}
}
