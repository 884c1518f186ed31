package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nxtcron/nxtcron/daemon"
	"github.com/nxtcron/nxtcron/jobs"
	"github.com/nxtcron/nxtcron/sinks"
	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/web"
)

func addOutputFlag(cmd *cobra.Command, out *string) {
	cmd.Flags().StringVarP(out, "output", "o", "table", "output format: table or json")
}

func checkOutput(out string) error {
	if out != "table" && out != "json" {
		return usageErr(fmt.Errorf("--output: %q is not table or json", out))
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) jobsCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List jobs with schedule, zone, next slots and last run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			ctx := cmd.Context()
			rt, err := a.open(ctx, daemon.OpenOptions{})
			if err != nil {
				return err
			}
			defer rt.Close()
			views, err := web.Jobs(ctx, rt.Store, rt.Jobs(), time.Now(), 3)
			if err != nil {
				return err
			}
			if out == "json" {
				return printJSON(cmd.OutOrStdout(), views)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tSCHEDULE\tZONE\tNEXT\tLAST RUN\tSINK")
			for _, v := range views {
				next := "-"
				if len(v.Next) > 0 {
					next = v.Next[0]
				}
				last := "-"
				if v.LastRun != nil {
					last = v.LastRun.Status + " " + v.LastRun.Slot
				}
				name := v.Name
				if v.Paused {
					name += " (paused)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, v.Schedule, v.Timezone, next, last, v.Sink)
			}
			return tw.Flush()
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}

func (a *app) runsCmd() *cobra.Command {
	var (
		out    string
		status string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "runs [JOB]",
		Short: "List slot records: succeeded, failed, interrupted, skipped, missed",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			ctx := cmd.Context()
			rt, err := a.open(ctx, daemon.OpenOptions{})
			if err != nil {
				return err
			}
			defer rt.Close()
			f := store.SlotFilter{Limit: limit}
			if len(args) == 1 {
				if _, err := rt.Job(args[0]); err != nil {
					return err
				}
				f.Job = args[0]
			}
			if status != "" {
				f.Statuses = strings.Split(status, ",")
			}
			runs, err := web.Runs(ctx, rt.Store, rt.Jobs(), f)
			if err != nil {
				return err
			}
			if out == "json" {
				return printJSON(cmd.OutOrStdout(), runs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tSLOT\tTRIGGER\tSTATUS\tATTEMPTS\tROWS\tERROR")
			for _, r := range runs {
				slot := r.Slot
				if r.MissedCount > 0 {
					slot = fmt.Sprintf("%s .. %s (%d slots)", r.Slot, r.MissedLast, r.MissedCount)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.Job, slot, r.Trigger, r.Status, r.Attempts, r.Rows, oneLine(r.Error))
			}
			return tw.Flush()
		},
	}
	addOutputFlag(cmd, &out)
	cmd.Flags().StringVar(&status, "status", "", "only these statuses (comma-separated)")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many records")
	return cmd
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

func (a *app) watermarksCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watermarks",
		Short: "Inspect and move incremental cursors",
	}
	var out string
	list := &cobra.Command{
		Use:   "list [JOB]",
		Short: "List watermarks",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			ctx := cmd.Context()
			rt, err := a.open(ctx, daemon.OpenOptions{})
			if err != nil {
				return err
			}
			defer rt.Close()
			job := ""
			if len(args) == 1 {
				j, err := rt.Job(args[0])
				if err != nil {
					return err
				}
				job = j.Name
			}
			wms, err := rt.Store.Watermarks(ctx, job)
			if err != nil {
				return err
			}
			type view struct {
				Job       string    `json:"job"`
				Company   int64     `json:"company"`
				Value     string    `json:"value"`
				Source    string    `json:"source"`
				RunID     string    `json:"run_id,omitempty"`
				UpdatedAt time.Time `json:"updated_at"`
			}
			// A sink that keeps its own watermarks (postgres) holds the copy
			// that counts; the store's is a mirror.
			fromSink := map[string][]sinks.CompanyWatermark{}
			for _, j := range rt.Jobs() {
				if job != "" && j.Name != job {
					continue
				}
				err := withWatermarkAdmin(ctx, rt, j, func(a sinks.WatermarkAdmin) error {
					ws, err := a.Watermarks(ctx, j.Name)
					fromSink[j.Name] = ws
					return err
				})
				if err != nil {
					return err
				}
			}
			views := make([]view, 0, len(wms))
			for _, w := range wms {
				if _, ok := fromSink[w.Job]; !ok {
					views = append(views, view{w.Job, w.Company, w.Value, "store", w.RunID, w.UpdatedAt})
				}
			}
			for name, ws := range fromSink {
				for _, w := range ws {
					views = append(views, view{Job: name, Company: w.Company, Value: w.Value, Source: "sink", UpdatedAt: w.UpdatedAt})
				}
			}
			sort.Slice(views, func(a, b int) bool {
				if views[a].Job != views[b].Job {
					return views[a].Job < views[b].Job
				}
				return views[a].Company < views[b].Company
			})
			if out == "json" {
				return printJSON(cmd.OutOrStdout(), views)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tCOMPANY\tWATERMARK\tSOURCE\tUPDATED")
			for _, v := range views {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", v.Job, v.Company, v.Value, v.Source, v.UpdatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	addOutputFlag(list, &out)

	var company int64
	set := &cobra.Command{
		Use:   "set JOB VALUE --company N",
		Short: "Set a company's watermark (server local time, e.g. 2026-11-01T00:00:00)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("company") {
				return usageErr(errors.New("set needs --company"))
			}
			value, err := normaliseWatermark(args[1])
			if err != nil {
				return usageErr(err)
			}
			ctx := cmd.Context()
			rt, err := a.open(ctx, daemon.OpenOptions{})
			if err != nil {
				return err
			}
			defer rt.Close()
			job, err := rt.Job(args[0])
			if err != nil {
				return err
			}
			if job.Incremental == nil {
				return fmt.Errorf("job %s is not incremental", job.Name)
			}
			err = withWatermarkAdmin(ctx, rt, job, func(a sinks.WatermarkAdmin) error {
				return a.SetWatermark(ctx, job.Name, company, value)
			})
			if err != nil {
				return err
			}
			if err := rt.Store.SetWatermark(ctx, store.Watermark{Job: job.Name, Company: company, Value: value}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s company %d: watermark set to %s\n", job.Name, company, value)
			return nil
		},
	}
	set.Flags().Int64Var(&company, "company", 0, "the company (vismaNetCompanyId)")

	var resetCompany int64
	reset := &cobra.Command{
		Use:   "reset JOB [--company N]",
		Short: "Forget watermarks: the next run imports everything",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rt, err := a.open(ctx, daemon.OpenOptions{})
			if err != nil {
				return err
			}
			defer rt.Close()
			job, err := rt.Job(args[0])
			if err != nil {
				return err
			}
			var c *int64
			if cmd.Flags().Changed("company") {
				c = &resetCompany
			}
			n, err := rt.Store.ResetWatermarks(ctx, job.Name, c)
			if err != nil {
				return err
			}
			err = withWatermarkAdmin(ctx, rt, job, func(a sinks.WatermarkAdmin) error {
				var err error
				n, err = a.ResetWatermarks(ctx, job.Name, c)
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d watermark(s) reset\n", job.Name, n)
			return nil
		},
	}
	reset.Flags().Int64Var(&resetCompany, "company", 0, "only this company")
	cmd.AddCommand(list, set, reset)
	return cmd
}

// withWatermarkAdmin calls fn with the job's sink when that sink keeps its
// own watermarks, and does nothing otherwise.
func withWatermarkAdmin(ctx context.Context, rt *daemon.Runtime, job *jobs.Job, fn func(sinks.WatermarkAdmin) error) error {
	sink, err := job.Sink.Config.Open(ctx, sinks.Env{Dir: filepath.Dir(job.File), Log: rt.Logger})
	if err != nil {
		return fmt.Errorf("opening the %s sink of %s: %w", job.Sink.Type, job.Name, err)
	}
	defer sink.Close()
	admin, ok := sink.(sinks.WatermarkAdmin)
	if !ok {
		return nil
	}
	return fn(admin)
}

// normaliseWatermark accepts a server-local DateTime with or without a
// fraction and writes it in the fixed-width form watermarks use.
func normaliseWatermark(s string) (string, error) {
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Format("2006-01-02T15:04:05.000"), nil
		}
	}
	return "", fmt.Errorf("watermark %q: expected a server local DateTime like 2026-11-01T02:30:00", s)
}

func (a *app) migrateCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "migrate", Short: "Store migrations"}
	up := &cobra.Command{
		Use:   "up",
		Short: "Apply pending migrations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd, func(st store.Store) error {
				if err := st.Migrate(cmd.Context()); err != nil {
					return err
				}
				return a.printMigrations(cmd, st)
			})
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show which migrations are applied",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd, func(st store.Store) error { return a.printMigrations(cmd, st) })
		},
	}
	cmd.AddCommand(up, status)
	return cmd
}

// withStore opens the configured store without migrating it (the migrate
// verbs decide that) and calls fn with it.
func (a *app) withStore(cmd *cobra.Command, fn func(store.Store) error) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	log, err := a.logger(cfg)
	if err != nil {
		return err
	}
	st, err := daemon.OpenStore(cmd.Context(), cfg, log, false)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

func (a *app) printMigrations(cmd *cobra.Command, st store.Store) error {
	ms, err := st.Migrations(cmd.Context())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
	pending := 0
	for _, m := range ms {
		applied := "pending"
		if m.Applied {
			applied = "yes"
			if m.AppliedAt != nil {
				applied = m.AppliedAt.UTC().Format(time.RFC3339)
			}
		} else {
			pending++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", strconv.FormatInt(m.Version, 10), m.Name, applied)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if pending > 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "%d pending\n", pending)
	}
	return nil
}
