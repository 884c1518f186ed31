package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/sinks"
)

// Modes: how a company's rows meet the rows already in the table.
const (
	// ModeUpsert inserts new keys and updates changed rows (the default).
	ModeUpsert = "upsert"
	// ModeAppend inserts every row; with a key, rows whose key is present
	// are left as they are.
	ModeAppend = "append"
	// ModeReplace deletes the company's rows and inserts the new ones.
	ModeReplace = "replace"
)

// Column layouts.
const (
	// ColumnsTyped gives each selected field a column of its GraphQL type
	// (the default).
	ColumnsTyped = "typed"
	// ColumnsJSONB keeps each row in one jsonb column, data, beside the
	// key columns.
	ColumnsJSONB = "jsonb"
)

// Type registers the Postgres sink.
var Type = sinks.Type{
	Name: "postgres",
	New:  func() sinks.Config { return &Config{Mode: ModeUpsert, Columns: ColumnsTyped} },
}

// Config is the sink section of a job with type: postgres.
type Config struct {
	// DSN is the target database (a postgres:// URL or key=value pairs);
	// dsn_file reads it from a file.
	DSN config.Secret `yaml:"dsn"`
	// Table is schema.table (or table, in schema public).
	Table string `yaml:"table"`
	// Key lists the fields that identify a row within a company; company_no
	// is always part of the key. Required for upsert.
	Key []string `yaml:"key"`
	// Mode is upsert, append or replace.
	Mode string `yaml:"mode"`
	// Columns is typed or jsonb.
	Columns string `yaml:"columns"`
}

var _ sinks.Config = (*Config)(nil)

// Validate checks the section against the job. It never quotes the DSN.
func (c *Config) Validate(job sinks.JobInfo) []sinks.FieldError {
	var errs []sinks.FieldError
	add := func(key, format string, args ...any) {
		errs = append(errs, sinks.FieldError{Key: key, Message: fmt.Sprintf(format, args...)})
	}

	if c.DSN.IsZero() {
		add("dsn", "required: the target database, as in postgres://nxtcron@db.example.com/warehouse (or dsn_file)")
	} else if _, err := pgxpool.ParseConfig(c.DSN.Reveal()); err != nil {
		add("dsn", "not a valid Postgres connection string (a postgres:// URL or key=value pairs)")
	}
	if c.Table == "" {
		add("table", "required: schema.table, as in bnxt.associate")
	} else if _, _, err := parseTable(c.Table); err != nil {
		add("table", "%s", err)
	}
	switch c.Mode {
	case ModeUpsert, ModeAppend, ModeReplace:
	default:
		add("mode", "must be upsert, append or replace, not %q", c.Mode)
	}
	switch c.Columns {
	case ColumnsTyped, ColumnsJSONB:
	default:
		add("columns", "must be typed or jsonb, not %q", c.Columns)
	}
	if c.Mode == ModeUpsert && len(c.Key) == 0 {
		add("key", "required with mode upsert: the fields that identify a row in a company, as in [associateNo]")
	}
	if c.Mode == ModeReplace && job.Incremental {
		add("mode", "replace is refused for an incremental job: it reads only the changed rows, and replacing a company's rows with them would delete the rest")
	}
	seen := map[string]bool{}
	for i, k := range c.Key {
		key := fmt.Sprintf("key[%d]", i)
		switch {
		case seen[k]:
			add(key, "%s is listed twice", k)
		case len(job.Fields) > 0 && !slices.Contains(job.Fields, k):
			add(key, "%s is not selected under items%s", k, config.DidYouMean(k, job.Fields))
		}
		seen[k] = true
	}
	if len(job.Fields) > 0 && (c.Columns == ColumnsTyped || c.Columns == ColumnsJSONB) {
		var key []string
		for _, k := range c.Key {
			if slices.Contains(job.Fields, k) {
				key = append(key, k)
			}
		}
		for _, p := range columnNames(job.Fields, key, c.Columns) {
			add("columns", "%s", p)
		}
	}
	return errs
}

// Open makes the sink for one attempt: a connection pool on the DSN, which
// connects when first used.
func (c *Config) Open(ctx context.Context, env sinks.Env) (sinks.Sink, error) {
	if errs := c.Validate(sinks.JobInfo{}); len(errs) > 0 {
		return nil, sinks.Permanent(fmt.Errorf("postgres sink: %s: %s", errs[0].Key, errs[0].Message))
	}
	schema, table, _ := parseTable(c.Table)
	pcfg, err := pgxpool.ParseConfig(c.DSN.Reveal())
	if err != nil {
		return nil, sinks.Permanent(errors.New("postgres sink: dsn is not a valid connection string"))
	}
	if _, ok := pcfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		pcfg.ConnConfig.RuntimeParams["application_name"] = "nxtcron"
	}
	log, _ := env.Log.(*zap.Logger)
	if log == nil {
		log = zap.NewNop()
	}
	s := &Sink{
		cfg:     *c,
		schema:  schema,
		table:   table,
		log:     log.With(zap.String("sink", Type.Name), zap.String("table", schema+"."+table)),
		secrets: []string{c.DSN.Reveal()},
		writers: map[*writer]struct{}{},
	}
	if pw := pcfg.ConnConfig.Password; len(pw) >= 3 {
		s.secrets = append(s.secrets, pw)
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, s.safe(fmt.Errorf("postgres sink: creating the connection pool: %w", err))
	}
	return s, nil
}

// scrubbed is an error whose text had a secret replaced.
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// safe returns err with the DSN and its password replaced by <secret> in
// its text. pgx does not put passwords in its errors; this makes sure.
func (s *Sink) safe(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, secret := range s.secrets {
		if secret != "" {
			clean = strings.ReplaceAll(clean, secret, "<secret>")
		}
	}
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}
