package connect

import (
	"encoding/json"
	"html/template"
	"net/http"
)

// OAuth 2.0 error codes (RFC 6749 §4.1.2.1 and §5.2, RFC 7009).
const (
	ErrCodeInvalidRequest          = "invalid_request"
	ErrCodeInvalidClient           = "invalid_client"
	ErrCodeInvalidGrant            = "invalid_grant"
	ErrCodeUnauthorizedClient      = "unauthorized_client"
	ErrCodeUnsupportedGrantType    = "unsupported_grant_type"
	ErrCodeInvalidScope            = "invalid_scope"
	ErrCodeUnsupportedResponseType = "unsupported_response_type"
	ErrCodeAccessDenied            = "access_denied"

	errCodeServerError = "server_error"
)

// oauthError is an error answer of the token or revocation endpoint.
type oauthError struct {
	code        string
	description string
	basic       bool // the client authenticated with HTTP Basic
}

func (e *oauthError) Error() string { return e.code + ": " + e.description }

func errInvalidRequest(desc string) *oauthError {
	return &oauthError{code: ErrCodeInvalidRequest, description: desc}
}

func errInvalidGrant(desc string) *oauthError {
	return &oauthError{code: ErrCodeInvalidGrant, description: desc}
}

// writeOAuthError answers per RFC 6749 §5.2: HTTP 400 with a JSON body, 401
// for invalid_client (with WWW-Authenticate: Basic when Basic was used).
func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	status := http.StatusBadRequest
	if e.code == errCodeServerError {
		status = http.StatusInternalServerError
	}
	if e.code == ErrCodeInvalidClient {
		status = http.StatusUnauthorized
		if e.basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="Visma Connect sandbox"`)
		}
	}
	WriteOAuthError(w, status, e.code, e.description)
}

// WriteOAuthError writes an RFC 6749 §5.2 error body with the given status.
func WriteOAuthError(w http.ResponseWriter, status int, code, description string) {
	writeNoStoreJSON(w, status, map[string]string{"error": code, "error_description": description})
}

func writeNoStoreJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{{.Title}} - Visma Connect sandbox</title></head>
<body>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
</body>
</html>
`))

// writePage writes a small HTML page.
func writePage(w http.ResponseWriter, status int, title, message string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, struct{ Title, Message string }{title, message})
}
