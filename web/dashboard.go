package web

import (
	"html/template"
	"net/http"

	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/store"
)

var dashboardTmpl = template.Must(template.New("dashboard").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>nxtcron</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin-bottom:2rem;width:100%}
th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}
th{background:#f4f4f4}.succeeded{color:#176e2a}.failed{color:#b00020}.running{color:#0b57d0}
.missed,.skipped,.interrupted{color:#8a6d00}code{font-size:12px}
</style></head><body>
<h1>nxtcron</h1>
<h2>Jobs</h2>
<table><tr><th>Job</th><th>Schedule</th><th>Zone</th><th>Next</th><th>Last run</th><th>Sink</th></tr>
{{range .Jobs}}<tr><td><b>{{.Name}}</b>{{if .Paused}} (paused){{end}}<br><small>{{.Description}}</small></td>
<td><code>{{.Schedule}}</code></td><td>{{.Timezone}}</td><td>{{range .Next}}{{.}}<br>{{end}}</td>
<td>{{with .LastRun}}<span class="{{.Status}}">{{.Status}}</span> {{.Slot}}{{end}}</td><td>{{.Sink}}</td></tr>
{{end}}</table>
<h2>Running</h2>
<table><tr><th>Job</th><th>Slot</th><th>Attempt</th><th>Owner</th><th>Lease until</th></tr>
{{range .Running}}<tr><td>{{.Job}}</td><td>{{.Slot}}</td><td>{{.Attempt}}</td><td>{{.Owner}}</td><td>{{.LeaseUntil.Format "15:04:05"}}</td></tr>
{{else}}<tr><td colspan="5">nothing is running</td></tr>{{end}}</table>
<h2>Recent slots</h2>
<table><tr><th>Job</th><th>Slot</th><th>Trigger</th><th>Status</th><th>Attempts</th><th>Rows</th><th>Error</th></tr>
{{range .Runs}}<tr><td>{{.Job}}</td><td>{{.Slot}}{{if .MissedCount}} … {{.MissedLast}} ({{.MissedCount}}){{end}}</td><td>{{.Trigger}}</td>
<td class="{{.Status}}">{{.Status}}</td><td>{{.Attempts}}</td><td>{{.Rows}}</td><td>{{.Error}}</td></tr>
{{end}}</table>
</body></html>`))

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	js := s.o.Jobs.Jobs()
	jobs, err := Jobs(r.Context(), s.o.Store, js, s.o.Now(), 3)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	runs, err := Runs(r.Context(), s.o.Store, js, store.SlotFilter{Limit: 50})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	running, err := s.o.Store.Running(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	zones := zonesOf(js)
	att := make([]AttemptView, 0, len(running))
	for _, a := range running {
		att = append(att, Attempt(a, zones[a.Job]))
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := dashboardTmpl.Execute(w, map[string]any{"Jobs": jobs, "Runs": runs, "Running": att}); err != nil {
		s.log.Warn("rendering dashboard", zap.Error(err))
	}
}
