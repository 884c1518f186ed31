package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/daemon"
	"github.com/nxtcron/nxtcron/scheduler"
	"github.com/nxtcron/nxtcron/store"
)

func (a *app) runCmd() *cobra.Command {
	var (
		company int64
		full    bool
		force   bool
	)
	cmd := &cobra.Command{
		Use:   "run JOB",
		Short: "Run one job now, in the foreground",
		Long: `Run one job now in the foreground, as a fenced manual claim, and print a
summary. With --full an incremental job ignores its watermark and reads every
row; because that re-delivers every row to a sink that appends (file, stdout,
webhook), --full on such a job also needs --force. Exits 1 when the run fails
or the job is running elsewhere.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if force && !full {
				return usageErr(errors.New("--force only goes with --full"))
			}
			ctx := cmd.Context()
			rt, err := a.open(ctx, daemon.OpenOptions{Connect: true})
			if err != nil {
				return err
			}
			defer rt.Close()
			job, err := rt.Job(args[0])
			if err != nil {
				return err
			}
			if full && job.Incremental != nil && job.Sink.Type != "postgres" && !force {
				return fmt.Errorf("--full re-delivers every row of %s to its %s sink; add --force to do it anyway", job.Name, job.Sink.Type)
			}
			cfg := rt.Config
			sched, err := scheduler.New(scheduler.Options{
				Store:             rt.Store,
				Runner:            rt.Runner,
				Owner:             daemon.ReplicaID(),
				HeartbeatInterval: cfg.Scheduler.HeartbeatInterval.D(),
				LeaseTimeout:      cfg.Scheduler.LeaseTimeout.D(),
				ShutdownGrace:     cfg.Scheduler.ShutdownGrace.D(),
				Retention:         cfg.Scheduler.Retention.D(),
				Logger:            rt.Logger.With(zap.String("component", "scheduler")),
			})
			if err != nil {
				return err
			}
			// A job no serve has registered yet (a fresh store) is registered
			// here; a registered one keeps the definition serve gave it, and a
			// different one here is refused as a conflict by the claim.
			if _, err := rt.Store.Job(ctx, job.Name); errors.Is(err, store.ErrNotFound) {
				if _, err := rt.Store.SyncJob(ctx, store.JobDef{
					Name: job.Name, ScheduleHash: job.ScheduleHash, DefinitionHash: job.DefinitionHash,
					Overlap: job.Overlap, Catchup: job.Catchup,
				}); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
			opts := store.RunOptions{Full: full, Force: force}
			if cmd.Flags().Changed("company") {
				opts.Company = &company
			}
			start := time.Now()
			claim, res, err := sched.RunManual(ctx, job, opts)
			took := time.Since(start).Round(time.Millisecond)
			if errors.Is(err, store.ErrBusy) {
				return err
			}
			status := "succeeded"
			if err != nil {
				status = "failed"
			}
			// The summary goes to stderr: stdout belongs to a stdout sink.
			out := cmd.ErrOrStderr()
			fmt.Fprintf(out, "job:       %s\n", job.Name)
			if claim.RunID != "" {
				fmt.Fprintf(out, "run:       %s (attempt %d, fence %d)\n", claim.RunID, claim.Attempt, claim.Fence)
			}
			fmt.Fprintf(out, "status:    %s\n", status)
			fmt.Fprintf(out, "companies: %d\n", res.Companies)
			fmt.Fprintf(out, "rows:      %d\n", res.Rows)
			fmt.Fprintf(out, "took:      %s\n", took)
			if err != nil {
				return fmt.Errorf("%s failed: %w", job.Name, err)
			}
			return nil
		},
	}
	cmd.Flags().Int64Var(&company, "company", 0, "import only this company (vismaNetCompanyId)")
	cmd.Flags().BoolVar(&full, "full", false, "ignore the watermark and read every row")
	cmd.Flags().BoolVar(&force, "force", false, "with --full: re-deliver every row even to a sink that appends")
	return cmd
}
