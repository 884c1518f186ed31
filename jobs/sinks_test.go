package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/sinks"
)

// memoryType is a sink type for loader tests: it has a mode key (like the
// Postgres sink), a secret with a _file twin (like a DSN) and a key list
// that Validate checks against the job.
var memoryType = sinks.Type{
	Name: "memory",
	New:  func() sinks.Config { return &memoryConfig{Mode: "upsert"} },
}

type memoryConfig struct {
	Mode  string        `yaml:"mode"`
	DSN   config.Secret `yaml:"dsn"`
	Key   []string      `yaml:"key"`
	Table string        `yaml:"table"`
}

func (c *memoryConfig) Validate(job sinks.JobInfo) []sinks.FieldError {
	var errs []sinks.FieldError
	switch c.Mode {
	case "upsert", "append", "replace":
	default:
		errs = append(errs, sinks.FieldError{Key: "mode", Message: fmt.Sprintf("must be upsert, append or replace, not %q", c.Mode)})
	}
	if c.Table == "" {
		errs = append(errs, sinks.FieldError{Key: "table", Message: "required"})
	}
	for i, k := range c.Key {
		if !slices.Contains(job.Fields, k) {
			errs = append(errs, sinks.FieldError{Key: fmt.Sprintf("key[%d]", i), Message: fmt.Sprintf("%s is not selected under items", k)})
		}
	}
	return errs
}

func (c *memoryConfig) Open(context.Context, sinks.Env) (sinks.Sink, error) {
	return nil, errors.New("memory sink: only for loader tests")
}

// testTypes is the real table plus memoryType.
var testTypes = append(slices.Clone(sinkTypes), memoryType)
