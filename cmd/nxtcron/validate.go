package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nxtcron/nxtcron/jobs"
)

func (a *app) validateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the config and every job file",
		Long: `Check config.yaml and every job file it loads. Every problem is printed as
file:line: key.path: message; the exit code is 1 when there is any.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				printError(a.stderr, err)
				return silent(exitFailure)
			}
			js, err := jobs.Load(cfg)
			if err != nil {
				printError(a.stderr, err)
				return silent(exitFailure)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d connections, %d jobs)\n", a.path(), len(cfg.Connections), len(js))
			return nil
		},
	}
}
