package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/config/configtest"
)

// jwtPattern matches the header and payload of a JWT (an access token).
var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`)

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// TestSecretsNeverLeak runs the daemon and the one-shot verbs at debug
// level with the client secret given through the environment, then
// through client_secret_file (right, then wrong), and an admin token set;
// none of the output, logs, API answers, metrics or dashboard contains a
// secret or an access token.
func TestSecretsNeverLeak(t *testing.T) {
	const clientSecret = "sandbox-service-secret" // the one the sandbox's service client takes
	adminToken := "admin-" + randomHex(t, 16)
	wrongSecret := "wrong-" + randomHex(t, 12)

	e := NewEnv(t)
	e.Vars["NXTCRON_ADMIN_TOKEN"] = adminToken
	e.Vars["BNXT_CLIENT_SECRET"] = clientSecret
	e.AdminToken = adminToken
	base := Config{LogLevel: "debug", AdminToken: "${NXTCRON_ADMIN_TOKEN}", Sandbox: "rows: 7"}
	cfg := base
	cfg.ClientSecret = "client_secret: ${BNXT_CLIENT_SECRET}"
	e.WriteConfig(cfg)
	e.WriteJob("accounts", Job{Schedule: "@every 1s"})
	e.WriteJob("printed", Job{Companies: "[1001]", Sink: "{type: stdout}"})
	// Run by `nxtcron run` only: a manual slot in the same second as a
	// scheduled one of the same job would name the same file.
	e.WriteJob("once", Job{})
	out := map[string]string{} // what was said, by whom

	d := e.Serve()
	d.WaitRuns("accounts", "two succeeded slots", func(r RunsResponse) bool { return r.Count("succeeded") >= 2 })
	status, body := d.Do(http.MethodPost, "/api/jobs/printed/run", adminToken, nil)
	require.Equal(t, http.StatusAccepted, status, "%s", body)
	out["POST /api/jobs/printed/run"] = string(body)
	d.WaitRuns("printed", "the manual run to succeed", func(r RunsResponse) bool { return r.Count("succeeded") == 1 })
	for _, path := range []string{"/api/jobs", "/api/runs", "/metrics", "/", "/healthz", "/readyz"} {
		status, body := d.Get(path)
		require.Equal(t, http.StatusOK, status, "GET %s: %s", path, body)
		out["GET "+path] = string(body)
	}
	status, body = d.Do(http.MethodGet, "/api/runs", "not-"+adminToken, nil)
	require.Equal(t, http.StatusUnauthorized, status)
	out["GET /api/runs with a wrong token"] = string(body)
	require.Equal(t, 0, d.Stop())
	require.Contains(t, d.Stdout(), `"accountNo"`, "the stdout sink printed rows")
	require.Contains(t, d.Stderr(), `"msg":"access token obtained"`, "tokens were fetched")
	out["serve stdout"], out["serve stderr"] = d.Stdout(), d.Stderr()

	// The secret from a file (with the trailing newline editors leave).
	secretFile := e.WriteFile("secrets/client_secret", clientSecret+"\n")
	delete(e.Vars, "BNXT_CLIENT_SECRET")
	cfg = base
	cfg.ClientSecret = "client_secret_file: " + secretFile
	e.WriteConfig(cfg)
	for _, job := range []string{"once", "printed"} {
		res := e.Run("run", job)
		require.Equal(t, 0, res.Code, "run %s: %s", job, res.Stderr)
		out["run "+job+" stdout"], out["run "+job+" stderr"] = res.Stdout, res.Stderr
	}
	require.Contains(t, out["run printed stdout"], `"accountNo"`)

	// A wrong secret: the token request is refused, and saying so must
	// not print the secret either.
	e.WriteFile("secrets/client_secret", wrongSecret+"\n")
	res := e.Run("run", "once")
	require.Equal(t, 1, res.Code, res.Stderr)
	require.Contains(t, res.Stderr, "invalid_client")
	out["run with a wrong secret stdout"], out["run with a wrong secret stderr"] = res.Stdout, res.Stderr

	for _, args := range [][]string{{"validate"}, {"jobs"}, {"jobs", "-o", "json"}, {"runs"}, {"runs", "-o", "json"}} {
		res := e.Run(args...)
		require.Equal(t, 0, res.Code, "%v: %s", args, res.Stderr)
		name := strings.Join(args, " ")
		out[name+" stdout"], out[name+" stderr"] = res.Stdout, res.Stderr
	}

	for _, name := range slices.Sorted(maps.Keys(out)) {
		t.Run(name, func(t *testing.T) {
			configtest.AssertNoSecret(t, out[name], clientSecret, adminToken, wrongSecret)
			require.Empty(t, jwtPattern.FindAllString(out[name], 3), "an access token")
		})
	}
}

// TestAdminTokenGuardsTheAPI checks that with an admin token set the API
// and the dashboard answer 401 to a request without it (or with another
// one) and serve it with it, while the probes and /metrics stay open.
func TestAdminTokenGuardsTheAPI(t *testing.T) {
	token := randomHex(t, 16)
	e := NewEnv(t)
	e.Vars["NXTCRON_ADMIN_TOKEN"] = token
	e.AdminToken = token
	e.WriteConfig(Config{AdminToken: "${NXTCRON_ADMIN_TOKEN}", Sandbox: "rows: 7"})
	e.WriteJob("accounts", Job{})
	d := e.Serve()

	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/api/jobs", http.StatusOK},
		{http.MethodGet, "/api/runs", http.StatusOK},
		{http.MethodGet, "/", http.StatusOK},
		{http.MethodPost, "/api/jobs/accounts/pause", http.StatusOK},
		{http.MethodPost, "/api/jobs/accounts/resume", http.StatusOK},
		{http.MethodPost, "/api/jobs/accounts/run", http.StatusAccepted},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			for name, auth := range map[string]string{
				"no token":       "",
				"another token":  "Bearer " + randomHex(t, 16),
				"a longer token": "Bearer " + token + "0",
				"a prefix":       "Bearer " + token[:len(token)-1],
				"not a bearer":   "Basic " + token,
				"no scheme":      token,
			} {
				h := http.Header{}
				if auth != "" {
					h.Set("Authorization", auth)
				}
				resp, body := doRequest(t, c.method, d.URL+c.path, h, nil)
				require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s: %s", name, body)
				require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer", name)
			}
			status, body := d.Do(c.method, c.path, token, nil)
			require.Equal(t, c.want, status, "with the token: %s", body)
		})
	}
	// The manual run the API accepted ran.
	d.WaitRuns("accounts", "the manual run to succeed", func(r RunsResponse) bool { return r.Count("succeeded") == 1 })

	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		status, body := d.Do(http.MethodGet, path, "", nil)
		require.Equal(t, http.StatusOK, status, "GET %s needs no token: %s", path, body)
	}
	// The counter moves just after the record is stored.
	eventually(t, "the metrics to count the manual run", func() (bool, string) {
		_, body := d.Do(http.MethodGet, "/metrics", "", nil)
		return strings.Contains(string(body), `nxtcron_slots_total{job="accounts",status="succeeded"} 1`+"\n"), ""
	})
	require.Equal(t, 0, d.Stop())
}
