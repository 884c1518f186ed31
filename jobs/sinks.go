package jobs

import (
	"github.com/nxtcron/nxtcron/sinks"
	"github.com/nxtcron/nxtcron/sinks/file"
	"github.com/nxtcron/nxtcron/sinks/postgres"
	"github.com/nxtcron/nxtcron/sinks/stdout"
	"github.com/nxtcron/nxtcron/sinks/webhook"
)

// sinkTypes is the explicit table of sink types a job's sink.type can name.
var sinkTypes = []sinks.Type{
	file.Type,
	postgres.Type,
	stdout.Type,
	webhook.Type,
}

// sinkType returns the sink type named name.
func sinkType(types []sinks.Type, name string) (sinks.Type, bool) {
	for _, t := range types {
		if t.Name == name {
			return t, true
		}
	}
	return sinks.Type{}, false
}

// sinkTypeNames lists the names of types, in table order.
func sinkTypeNames(types []sinks.Type) []string {
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = t.Name
	}
	return names
}
