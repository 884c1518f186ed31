package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/daemon"
	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/tokens"
)

func (a *app) tokensCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Token lifecycle: list, enroll, import, revoke, rename, rekey",
		Long: `Inspect and manage the tokens nxtcron keeps for its connections. A
refresh_token connection runs as a person (the job user) who signs in once
through an enrollment link; nxtcron then keeps the refresh token alive and
rotates it. See docs/tokens.md.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.tokensListCmd(), a.tokensEnrollCmd(), a.tokensImportCmd(),
		a.tokensRevokeCmd(), a.tokensRenameCmd(), a.tokensRekeyCmd())
	return cmd
}

// tokenStore asserts the store's token operations.
func tokenStore(rt *daemon.Runtime) (store.TokenStore, error) {
	ts, ok := rt.Store.(store.TokenStore)
	if !ok {
		return nil, fmt.Errorf("store %T cannot keep tokens", rt.Store)
	}
	return ts, nil
}

// connection finds a configured connection by name.
func connection(cfg *config.Config, name string) (config.Connection, error) {
	names := make([]string, 0, len(cfg.Connections))
	for _, c := range cfg.Connections {
		if c.Name == name {
			return c, nil
		}
		names = append(names, c.Name)
	}
	return config.Connection{}, fmt.Errorf("connection %q not found in %s%s", name, cfg.Path, config.DidYouMean(name, names))
}

func refreshConnection(cfg *config.Config, name string) (config.Connection, error) {
	c, err := connection(cfg, name)
	if err != nil {
		return c, err
	}
	if c.Grant != config.GrantRefreshToken {
		return c, fmt.Errorf("connection %q has grant %s: only refresh_token connections hold a refresh token", name, c.Grant)
	}
	return c, nil
}

func formatTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func (a *app) tokensListCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every connection's tokens: status, generation, expiry (never a token)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			ctx := cmd.Context()
			rt, err := a.open(ctx, daemon.OpenOptions{NoJobs: true})
			if err != nil {
				return err
			}
			defer rt.Close()
			ts, err := tokenStore(rt)
			if err != nil {
				return err
			}
			list, err := tokens.List(ctx, ts, rt.Config.Connections, time.Now())
			if err != nil {
				return err
			}
			if out == "json" {
				if list == nil {
					list = []tokens.Status{}
				}
				return printJSON(cmd.OutOrStdout(), list)
			}
			w := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CONNECTION\tGRANT\tSTATUS\tGENERATION\tENROLLED AS\tREFRESHED\tREFRESH EXPIRES\tACCESS EXPIRES")
			for _, s := range list {
				who := s.EnrolledAs
				if who == "" {
					who = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", s.Connection, s.Grant, s.Status, s.Generation,
					who, formatTime(s.RefreshedAt), formatTime(s.RefreshExpiresAt), formatTime(s.AccessExpiresAt))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, s := range list {
				if s.Message != "" {
					fmt.Fprintf(w, "\n%s: %s\n", s.Connection, s.Message)
				}
				if s.Action != "" {
					fmt.Fprintf(w, "%s: %s\n", s.Connection, s.Action)
				}
			}
			return nil
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}

func (a *app) tokensEnrollCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "enroll CONNECTION",
		Short: "Print a one-time link (30 minutes) for the job user to sign in with",
		Long: `Print a signed one-time link to public_url/enroll/CONNECTION, valid for 30
minutes. Open it in a browser while nxtcron serve runs there, and sign in to
Visma Connect as the job user; nxtcron then stores the refresh token
(encrypted) and keeps it alive. The link works once.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rt, err := a.open(ctx, daemon.OpenOptions{NoJobs: true, Keys: true})
			if err != nil {
				return err
			}
			defer rt.Close()
			c, err := refreshConnection(rt.Config, args[0])
			if err != nil {
				return err
			}
			link, err := tokens.NewLink(rt.Keys, rt.Config.HTTP.PublicURL, c, time.Now())
			if err != nil {
				return err
			}
			who := "the job user"
			if c.ExpectedEmail != "" {
				who = c.ExpectedEmail
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Open this link in a browser before %s and sign in to Visma Connect as %s:\n\n  %s\n\n",
				link.Expires.UTC().Format(time.RFC3339), who, link.URL)
			fmt.Fprintf(w, "The link works once, and only while nxtcron serve answers at %s.\n", rt.Config.HTTP.PublicURL)
			fmt.Fprintf(w, "Client %s must list this redirect URI in the Visma Developer Portal: %s%s\n",
				c.ClientID, rt.Config.HTTP.PublicURL, c.RedirectPath)
			return nil
		},
	}
}

func (a *app) tokensImportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "import CONNECTION",
		Short: "Store a refresh token read from standard input as the connection's new chain",
		Long: `Read one refresh token from standard input and store it (encrypted) as the
connection's refresh token, as an enrollment would. Its absolute expiry is
counted from now (connections[].refresh_token_lifetime). Use it to move a
chain from another installation; prefer "tokens enroll", which checks who
signed in.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rt, err := a.open(ctx, daemon.OpenOptions{NoJobs: true, Keys: true})
			if err != nil {
				return err
			}
			defer rt.Close()
			c, err := refreshConnection(rt.Config, args[0])
			if err != nil {
				return err
			}
			data, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<10))
			if err != nil {
				return fmt.Errorf("reading the refresh token from standard input: %w", err)
			}
			ts, err := tokenStore(rt)
			if err != nil {
				return err
			}
			st, err := tokens.Import(ctx, ts, rt.Keys, c, string(data), time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "connection %s: refresh token stored (generation %d, expires %s); the next use rotates it\n",
				c.Name, st.Generation, formatTime(st.RefreshExpiresAt))
			return nil
		},
	}
}

func (a *app) tokensRevokeCmd() *cobra.Command {
	var local bool
	cmd := &cobra.Command{
		Use:   "revoke CONNECTION",
		Short: "Revoke the connection's refresh token at Visma Connect and forget its tokens",
		Long: `Ask Visma Connect to revoke the connection's refresh token (RFC 7009; the
whole chain ends) and forget every token nxtcron holds for the connection.
The connection then needs a new enrollment. With --local nxtcron only forgets
(when the provider cannot be reached, or for tokens of a connection no longer
configured).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rt, err := a.open(ctx, daemon.OpenOptions{NoJobs: true, Keys: true})
			if err != nil {
				return err
			}
			defer rt.Close()
			ts, err := tokenStore(rt)
			if err != nil {
				return err
			}
			name := args[0]
			c, err := connection(rt.Config, name)
			if err != nil {
				if !local {
					return fmt.Errorf("%w; tokens of a connection no longer configured can only be forgotten: add --local", err)
				}
				c = config.Connection{Name: name}
			}
			remote := !local
			w := cmd.OutOrStdout()
			if remote && c.Authority == config.AuthoritySandbox {
				fmt.Fprintln(w, "the in-process sandbox keeps no tokens between runs: nothing to revoke remotely")
				remote = false
			}
			asked, err := tokens.Revoke(ctx, ts, rt.Keys, c, &http.Client{Timeout: 30 * time.Second}, remote)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("connection %q has no stored tokens", name)
			}
			if err != nil {
				return err
			}
			if asked {
				fmt.Fprintf(w, "connection %s: refresh token revoked at %s%s\n", name, strings.TrimRight(c.Authority, "/"), tokens.RevokePath)
			}
			fmt.Fprintf(w, "connection %s: tokens forgotten\n", name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&local, "local", false, "only forget the tokens; do not ask the provider to revoke")
	return cmd
}

func (a *app) tokensRenameCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rename OLD NEW",
		Short: "Move the stored tokens of connection OLD to connection NEW (after renaming it in config.yaml)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rt, err := a.open(ctx, daemon.OpenOptions{NoJobs: true})
			if err != nil {
				return err
			}
			defer rt.Close()
			from, to := args[0], args[1]
			if _, err := connection(rt.Config, to); err != nil {
				return fmt.Errorf("%w; rename the connection in config.yaml first", err)
			}
			ts, err := tokenStore(rt)
			if err != nil {
				return err
			}
			if err := ts.RenameTokens(ctx, from, to); err != nil {
				switch {
				case errors.Is(err, store.ErrNotFound):
					return fmt.Errorf("connection %q has no stored tokens", from)
				case errors.Is(err, store.ErrExists):
					return fmt.Errorf("connection %q has stored tokens already; revoke them first (nxtcron tokens revoke %s)", to, to)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tokens of connection %s now belong to connection %s\n", from, to)
			return nil
		},
	}
}

func (a *app) tokensRekeyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rekey",
		Short: "Re-encrypt every stored token with the first encryption key",
		Long: `Re-encrypt every stored token (and the key check) with the first key of
store.encryption_keys_file (or store.encryption_keys), in one transaction.
To rotate keys: put a new key first, keep the old one after it, run rekey on
one replica, then remove the old key everywhere.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			rt, err := a.open(ctx, daemon.OpenOptions{NoJobs: true, Keys: true})
			if err != nil {
				return err
			}
			defer rt.Close()
			ts, err := tokenStore(rt)
			if err != nil {
				return err
			}
			n, err := tokens.Rekey(ctx, ts, rt.Keys)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "re-encrypted %d values with key %s; keys other than the first can now be removed\n", n, rt.Keys.SealingKeyID())
			return nil
		},
	}
}
