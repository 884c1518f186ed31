// Package jobs loads job files (jobs.d/NAME.yaml) into validated Jobs, and
// runs them: token, pages, sink, watermark.
//
// Loading follows config.yaml's rules (package config): strict keys with
// suggestions, ${VAR} expansion after parsing (never in query or
// query_file), Secret _file twins, relative paths against the job file, and
// every problem of every file reported as file:line: key.path: message.
package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/sinks"
)

// Job defaults, for the keys a job file leaves out. timezone, timeout and
// catchup default to config.yaml's defaults section.
const (
	DefaultPageSize         = 500
	MaxPageSize             = 10000
	DefaultParallelism      = 4
	DefaultIncrementalField = "changedTimestamp"
	DefaultLookback         = 5 * time.Minute
	DefaultServerTimezone   = "Europe/Oslo"
	DefaultRetryAttempts    = 1
	DefaultRetryBackoff     = time.Minute
	// MaxQueryFileSize bounds a query_file.
	MaxQueryFileSize = 1 << 20
)

// fileSpec is a job file as written; defaultSpec fills what it leaves out.
type fileSpec struct {
	Name        string         `yaml:"name"`
	Description string         `yaml:"description"`
	Schedule    string         `yaml:"schedule"`
	Timezone    string         `yaml:"timezone"`
	Connection  string         `yaml:"connection"`
	Companies   yaml.Node      `yaml:"companies"`
	Query       string         `yaml:"query" config:"noexpand"`
	QueryFile   string         `yaml:"query_file" config:"noexpand"`
	Variables   map[string]any `yaml:"variables"`
	PageSize    int            `yaml:"page_size"`
	Parallelism int            `yaml:"parallelism"`
	Pagination  struct {
		Path string `yaml:"path"`
	} `yaml:"pagination"`
	Incremental *incrementalSpec `yaml:"incremental"`
	// Sink is decoded later, into the Config of the sink type it names;
	// its values are expanded then.
	Sink    yaml.Node       `yaml:"sink" config:"noexpand"`
	Timeout config.Duration `yaml:"timeout"`
	Retry   retrySpec       `yaml:"retry"`
	Overlap string          `yaml:"overlap"`
	Catchup config.Duration `yaml:"catchup"`
}

type incrementalSpec struct {
	Field          string          `yaml:"field"`
	Key            []string        `yaml:"key"`
	Lookback       config.Duration `yaml:"lookback"`
	ServerTimezone string          `yaml:"server_timezone"`
}

type retrySpec struct {
	Attempts int             `yaml:"attempts"`
	Backoff  config.Duration `yaml:"backoff"`
}

// defaultSpec is every job default in one place. Incremental is filled
// here too and dropped after decoding when the file has no incremental
// section.
func defaultSpec(cfg *config.Config) fileSpec {
	return fileSpec{
		Timezone:    cfg.Defaults.Timezone,
		PageSize:    DefaultPageSize,
		Parallelism: DefaultParallelism,
		Incremental: &incrementalSpec{
			Field:          DefaultIncrementalField,
			Lookback:       config.Duration(DefaultLookback),
			ServerTimezone: DefaultServerTimezone,
		},
		Timeout: cfg.Defaults.Timeout,
		Retry:   retrySpec{Attempts: DefaultRetryAttempts, Backoff: config.Duration(DefaultRetryBackoff)},
		Overlap: OverlapSkip,
		Catchup: cfg.Defaults.Catchup,
	}
}

// Load loads every job file that cfg.Jobs' globs match. Invalid files give
// config.Problems with every problem of every file, and no jobs: a job set
// is used whole or not at all. The jobs are sorted by name.
func Load(cfg *config.Config) ([]*Job, error) {
	return loadAll(cfg, sinkTypes)
}

// LoadFile loads one job file. An invalid file gives config.Problems; one
// that cannot be read, a plain error.
func LoadFile(cfg *config.Config, path string) (*Job, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolving job file path: %w", err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("reading job file: %w", err)
	}
	job, _, ps := loadFile(cfg, abs, data, sinkTypes)
	if err := ps.Err(); err != nil {
		return nil, err
	}
	return job, nil
}

func loadAll(cfg *config.Config, types []sinks.Type) ([]*Job, error) {
	var problems config.Problems
	cfgName := config.DisplayPath(cfg.Path)
	var files []string
	seen := map[string]bool{}
	for i, g := range cfg.Jobs {
		matches, err := filepath.Glob(g)
		if err != nil {
			problems = append(problems, config.Problem{File: cfgName, Line: 1, Key: fmt.Sprintf("jobs[%d]", i), Message: fmt.Sprintf("invalid glob: %v", err)})
			continue
		}
		for _, m := range matches {
			if strings.HasPrefix(filepath.Base(m), ".") {
				continue // editor and lock files (.#job.yaml), hidden files
			}
			abs, err := filepath.Abs(m)
			if err != nil || seen[abs] {
				continue
			}
			if st, err := os.Stat(abs); err != nil || !st.Mode().IsRegular() {
				continue
			}
			seen[abs] = true
			files = append(files, abs)
		}
	}

	var jobs []*Job
	byName := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			problems = append(problems, config.Problem{File: config.DisplayPath(f), Line: 1, Message: fmt.Sprintf("reading job file: %v", err)})
			continue
		}
		job, nameLine, ps := loadFile(cfg, f, data, types)
		problems = append(problems, ps...)
		if job == nil {
			continue
		}
		if other, dup := byName[job.Name]; dup {
			problems = append(problems, config.Problem{File: config.DisplayPath(f), Line: nameLine, Key: "name",
				Message: fmt.Sprintf("job %q is also defined in %s", job.Name, other)})
			continue
		}
		byName[job.Name] = config.DisplayPath(f)
		jobs = append(jobs, job)
	}
	if err := problems.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(jobs, func(a, b *Job) int { return strings.Compare(a.Name, b.Name) })
	return jobs, nil
}

// loadFile decodes and validates one job file (data, read from abs). It
// returns the job only when the file has no problem, and the line of its
// name (for problems that involve other files).
func loadFile(cfg *config.Config, abs string, data []byte, types []sinks.Type) (*Job, int, config.Problems) {
	d := config.NewDecoder(config.DisplayPath(abs), filepath.Dir(abs))
	root := d.Parse(data)
	if root == nil && len(d.Problems()) > 0 {
		return nil, 1, d.Problems()
	}
	spec := defaultSpec(cfg)
	d.Decode(root, "", &spec)
	if !d.Has("incremental") {
		spec.Incremental = nil
	}
	b := &builder{cfg: cfg, d: d, spec: &spec, root: root, abs: abs, types: types, job: &Job{File: abs}}
	b.build()
	if len(d.Problems()) > 0 {
		return nil, d.Line("name"), d.Problems()
	}
	b.job.ScheduleHash = scheduleHash(b.job.Schedule, b.job.Location)
	b.job.DefinitionHash = b.definitionHash()
	return b.job, d.Line("name"), nil
}

// scheduleHash identifies (schedule, timezone).
func scheduleHash(schedule string, loc *time.Location) string {
	sum := sha256.Sum256([]byte(schedule + "\n" + loc.String()))
	return hex.EncodeToString(sum[:])
}

// canonicalJob is what DefinitionHash covers: everything that changes what
// a run does. Not the description, and not secret values: the sink section
// is hashed as its marshalled Config, in which a Secret is "<secret>", so a
// rotated password does not look like a changed definition (and a stored
// hash cannot be used to guess it).
type canonicalJob struct {
	Name        string         `json:"name"`
	Schedule    string         `json:"schedule"`
	Timezone    string         `json:"timezone"`
	Connection  string         `json:"connection"`
	Companies   []int64        `json:"companies"`
	Query       string         `json:"query"`
	Variables   map[string]any `json:"variables"`
	PageSize    int            `json:"page_size"`
	Parallelism int            `json:"parallelism"`
	PagedPath   []string       `json:"paged_path"`
	Incremental *struct {
		Field          string   `json:"field"`
		Key            []string `json:"key"`
		Lookback       string   `json:"lookback"`
		ServerTimezone string   `json:"server_timezone"`
	} `json:"incremental"`
	SinkType string `json:"sink_type"`
	Sink     string `json:"sink"`
	Timeout  string `json:"timeout"`
	Retry    struct {
		Attempts int    `json:"attempts"`
		Backoff  string `json:"backoff"`
	} `json:"retry"`
	Overlap string `json:"overlap"`
	Catchup string `json:"catchup"`
}

func (b *builder) definitionHash() string {
	j := b.job
	c := canonicalJob{
		Name:        j.Name,
		Schedule:    j.Schedule,
		Timezone:    j.Location.String(),
		Connection:  j.Connection,
		Companies:   j.Companies,
		Query:       j.Query,
		Variables:   j.Variables,
		PageSize:    j.PageSize,
		Parallelism: j.Parallelism,
		PagedPath:   j.Paged.Path,
		SinkType:    j.Sink.Type,
		Sink:        b.sinkYAML,
		Timeout:     j.Timeout.String(),
		Overlap:     j.Overlap,
		Catchup:     j.Catchup.String(),
	}
	c.Retry.Attempts = j.Retry.Attempts
	c.Retry.Backoff = j.Retry.Backoff.String()
	if inc := j.Incremental; inc != nil {
		c.Incremental = &struct {
			Field          string   `json:"field"`
			Key            []string `json:"key"`
			Lookback       string   `json:"lookback"`
			ServerTimezone string   `json:"server_timezone"`
		}{inc.Field, inc.Key, inc.Lookback.String(), inc.ServerTimezone.String()}
	}
	data, err := json.Marshal(c)
	if err != nil {
		// Variables are plain YAML values (the decoder refuses NaN and
		// non-string keys), so this cannot happen; fail loudly if it does.
		panic(fmt.Sprintf("jobs: encoding the definition of %s: %v", j.Name, err))
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
