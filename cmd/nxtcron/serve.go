package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/daemon"
)

func (a *app) serveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon",
		Long: `Run the daemon: schedule every job, serve /healthz, /readyz, /metrics, the API
and the dashboard. SIGTERM or SIGINT stops it cleanly (running attempts are
recorded interrupted and rerun by another replica or the next start);
SIGHUP reloads the job files, keeping the old set if any is invalid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			log, err := a.logger(cfg)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			// Catch SIGHUP before anything can log "serving": its default
			// action would end the process.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			ctx := cmd.Context()
			d, err := daemon.New(ctx, daemon.Options{Config: cfg, Logger: log})
			if err != nil {
				return err
			}
			if err := d.Start(ctx); err != nil {
				_ = d.Stop(context.WithoutCancel(ctx))
				return err
			}
			for {
				select {
				case <-hup:
					if err := d.Reload(ctx); err != nil {
						log.Error("reload refused, keeping the current jobs", zap.Error(err))
					}
					continue
				case <-ctx.Done():
				}
				break
			}
			log.Info("stopping: draining running attempts")
			return d.Stop(context.WithoutCancel(ctx))
		},
	}
}
