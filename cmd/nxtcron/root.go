package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/daemon"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// exitError carries an exit code out of a command; its message (if any) has
// been printed already or is printed by run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageErr(err error) error { return &exitError{code: exitUsage, err: err} }

// silent exits with code, its message already printed.
func silent(code int) error { return &exitError{code: code} }

type app struct {
	configPath string
	stdout     io.Writer
	stderr     io.Writer
}

func run(args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "nxtcron: %v\n", ee.err)
			if ee.code == exitUsage {
				fmt.Fprintln(stderr, "Run 'nxtcron --help' for usage.")
			}
		}
		return ee.code
	}
	printError(stderr, err)
	return exitFailure
}

// printError prints validation problems one per line and anything else as
// one line.
func printError(w io.Writer, err error) {
	var probs config.Problems
	if errors.As(err, &probs) {
		for _, p := range probs {
			fmt.Fprintln(w, p.Error())
		}
		return
	}
	fmt.Fprintf(w, "nxtcron: %v\n", err)
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "nxtcron",
		Short: "Scheduled imports from the Visma Business NXT GraphQL API",
		Long: `nxtcron runs GraphQL import jobs against Visma Business NXT on cron schedules
and writes the rows to sinks. Every slot runs exactly once across replicas,
missed slots are recorded, and incremental imports never skip a row.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// An unknown command is a usage error (exit 2): with Args set, cobra
		// hands it to the root instead of failing with a plain error.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			var names []string
			for _, c := range cmd.Commands() {
				if c.IsAvailableCommand() {
					names = append(names, c.Name())
				}
			}
			return usageErr(fmt.Errorf("unknown command %q for %q%s", args[0], cmd.CommandPath(), config.DidYouMean(args[0], names)))
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.PersistentFlags().StringVar(&a.configPath, "config", "", "config file (default $NXTCRON_CONFIG, then ./config.yaml)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	root.AddCommand(
		a.serveCmd(), a.runCmd(), a.validateCmd(), a.jobsCmd(), a.runsCmd(),
		a.watermarksCmd(), a.migrateCmd(), a.sandboxCmd(), a.tokensCmd(),
	)
	for _, c := range root.Commands() {
		wrapArgs(c)
	}
	return root
}

// wrapArgs makes argument-count errors usage errors (exit 2), recursively.
func wrapArgs(c *cobra.Command) {
	if c.Args != nil {
		inner := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := inner(cmd, args); err != nil {
				return usageErr(err)
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

func (a *app) path() string {
	if a.configPath != "" {
		return a.configPath
	}
	if p := os.Getenv("NXTCRON_CONFIG"); p != "" {
		return p
	}
	return "config.yaml"
}

func (a *app) loadConfig() (*config.Config, error) {
	return config.Load(a.path())
}

func (a *app) logger(cfg *config.Config) (*zap.Logger, error) {
	return daemon.NewLogger(cfg.Log, a.stderr)
}

// open loads the config and opens a runtime for a verb.
func (a *app) open(ctx context.Context, o daemon.OpenOptions) (*daemon.Runtime, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	log, err := a.logger(cfg)
	if err != nil {
		return nil, err
	}
	o.Migrate = cfg.Store.Migrate != "off"
	return daemon.Open(ctx, cfg, log, o)
}
