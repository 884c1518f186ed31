// Package web is nxtcron's HTTP surface: /healthz, /readyz and /metrics for
// probes and scrapers; the JSON admin API under /api (jobs, runs, manual
// runs, pause and resume); and a small dashboard at /. Everything but the
// probes and metrics needs `Authorization: Bearer <admin_token>` unless the
// daemon listens on loopback without a token.
package web
