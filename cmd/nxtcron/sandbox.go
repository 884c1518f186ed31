package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nxtcron/nxtcron/sandbox"
)

func (a *app) sandboxCmd() *cobra.Command {
	opts := sandbox.DefaultOptions()
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Run the Visma Connect and Business NXT emulator alone",
		Long: `Run the sandbox emulator of Visma Connect and the Business NXT GraphQL API on
its own, for curl, Postman, Insomnia and demos. See docs/sandbox.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.Validate(); err != nil {
				return usageErr(err)
			}
			s, err := sandbox.New(opts)
			if err != nil {
				return err
			}
			if err := s.Listen(opts.Listen); err != nil {
				return err
			}
			defer s.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "sandbox listening on %s\n", s.URL())
			fmt.Fprintf(cmd.OutOrStdout(), "  discovery: %s/.well-known/openid-configuration\n", s.URL())
			fmt.Fprintf(cmd.OutOrStdout(), "  graphql:   %s/api/graphql-service (service) and %s/api/graphql (user)\n", s.URL(), s.URL())
			<-cmd.Context().Done()
			return nil
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}
