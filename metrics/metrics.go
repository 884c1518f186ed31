// Package metrics holds nxtcron's Prometheus collectors, with the names of
// the public contract. Components receive a *Metrics; a nil *Metrics is valid
// and records nothing, so tests and tools need not build one.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the daemon's collectors.
type Metrics struct {
	Registry *prometheus.Registry

	SlotsTotal              *prometheus.CounterVec // job, status
	SlotsMissedTotal        *prometheus.CounterVec // job
	JobLastSuccess          *prometheus.GaugeVec   // job
	JobDuration             *prometheus.HistogramVec
	RowsWrittenTotal        *prometheus.CounterVec // job, sink
	GraphQLRequestsTotal    *prometheus.CounterVec // connection, outcome
	TokenRefreshTotal       *prometheus.CounterVec // connection, result
	RefreshTokenExpiry      *prometheus.GaugeVec   // connection
	ConnectionNeedsReenroll *prometheus.GaugeVec   // connection
	WatermarkTimestamp      *prometheus.GaugeVec   // job, company
	StoreUp                 prometheus.Gauge
	JobDefinitionConflict   *prometheus.GaugeVec // job
	ClockOffsetSeconds      prometheus.Gauge
}

// New makes the collectors and registers them, with the Go and process
// collectors, on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		SlotsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxtcron_slots_total", Help: "Slot records by final status.",
		}, []string{"job", "status"}),
		SlotsMissedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxtcron_slots_missed_total", Help: "Slots that were due while no replica ran and were too old to catch up.",
		}, []string{"job"}),
		JobLastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nxtcron_job_last_success_timestamp_seconds", Help: "Unix time of the job's last successful attempt.",
		}, []string{"job"}),
		JobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nxtcron_job_duration_seconds", Help: "Duration of job attempts.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2.5, 12),
		}, []string{"job"}),
		RowsWrittenTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxtcron_rows_written_total", Help: "Rows committed to sinks.",
		}, []string{"job", "sink"}),
		GraphQLRequestsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxtcron_graphql_requests_total", Help: "GraphQL requests by outcome.",
		}, []string{"connection", "outcome"}),
		TokenRefreshTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxtcron_token_refresh_total", Help: "Token acquisitions and refreshes by result.",
		}, []string{"connection", "result"}),
		RefreshTokenExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nxtcron_refresh_token_expiry_timestamp_seconds", Help: "When the connection's refresh token expires.",
		}, []string{"connection"}),
		ConnectionNeedsReenroll: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nxtcron_connection_needs_reenroll", Help: "1 when the connection's refresh token is gone and a user must enroll again.",
		}, []string{"connection"}),
		WatermarkTimestamp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nxtcron_watermark_timestamp_seconds", Help: "The incremental watermark of (job, company) as Unix time.",
		}, []string{"job", "company"}),
		StoreUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nxtcron_store_up", Help: "1 when the store answered its last check.",
		}),
		JobDefinitionConflict: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nxtcron_job_definition_conflict", Help: "1 when this replica's job definition differs from the stored one and the job is skipped here.",
		}, []string{"job"}),
		ClockOffsetSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nxtcron_clock_offset_seconds", Help: "This replica's clock minus the store's clock.",
		}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.SlotsTotal, m.SlotsMissedTotal, m.JobLastSuccess, m.JobDuration,
		m.RowsWrittenTotal, m.GraphQLRequestsTotal, m.TokenRefreshTotal,
		m.RefreshTokenExpiry, m.ConnectionNeedsReenroll, m.WatermarkTimestamp,
		m.StoreUp, m.JobDefinitionConflict, m.ClockOffsetSeconds,
	)
	return m
}

// Slot counts a slot record with its final status.
func (m *Metrics) Slot(job, status string) {
	if m != nil {
		m.SlotsTotal.WithLabelValues(job, status).Inc()
	}
}

// Missed counts n missed slots.
func (m *Metrics) Missed(job string, n int) {
	if m != nil && n > 0 {
		m.SlotsMissedTotal.WithLabelValues(job).Add(float64(n))
	}
}

// GraphQLRequest counts one GraphQL request by outcome (ok, unauthorized,
// rate_limited, outstanding_limited, server_error, graphql_error, transport).
func (m *Metrics) GraphQLRequest(connection, outcome string) {
	if m != nil {
		m.GraphQLRequestsTotal.WithLabelValues(connection, outcome).Inc()
	}
}

// TokenRefresh counts a token acquisition by result (ok, error, invalid_grant).
func (m *Metrics) TokenRefresh(connection, result string) {
	if m != nil {
		m.TokenRefreshTotal.WithLabelValues(connection, result).Inc()
	}
}

// RowsWritten counts committed rows.
func (m *Metrics) RowsWritten(job, sink string, n int64) {
	if m != nil && n > 0 {
		m.RowsWrittenTotal.WithLabelValues(job, sink).Add(float64(n))
	}
}
