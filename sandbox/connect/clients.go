package connect

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Demo identities known to every Provider.
const (
	ServiceClientID     = "isv_sandbox_service"
	ServiceClientSecret = "sandbox-service-secret"
	WebClientID         = "sandbox_web"
	WebClientSecret     = "sandbox-web-secret"

	JobUserEmail   = "job.user@example.com"
	OtherUserEmail = "other.user@example.com"
	UserPassword   = "sandbox"
)

// WebClientScopes are the scopes the web client may request.
var WebClientScopes = []string{"openid", "profile", "email", ScopeGraphQL, "offline_access"}

// ServiceClientScopes are the scopes the service client may request.
var ServiceClientScopes = []string{ScopeGraphQLService, ScopeGraphQLServiceReadonly}

type client struct {
	id      string
	secret  string
	name    string
	grants  []string
	scopes  []string
	apiPath string // the GraphQL endpoint its access tokens are for
}

func (c *client) allows(grant string) bool { return slices.Contains(c.grants, grant) }

// checkScopes returns the requested scopes, or every allowed scope when none
// is requested, and an error naming the first scope the client may not have.
func (c *client) checkScopes(requested string) ([]string, error) {
	scopes := strings.Fields(requested)
	if len(scopes) == 0 {
		return slices.Clone(c.scopes), nil
	}
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if !slices.Contains(c.scopes, s) {
			return nil, fmt.Errorf("scope %q is not allowed for client %s", s, c.id)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// checkRedirectURI enforces the web client's registered redirect URIs:
// http://127.0.0.1:<any port>/<any path> and https://app.local:<any
// port>/<any path>. Like Visma Connect it never accepts localhost.
func (c *client) checkRedirectURI(raw string) error {
	if raw == "" {
		return errors.New("redirect_uri is required")
	}
	if c.id != WebClientID {
		return fmt.Errorf("client %s has no redirect URIs", c.id)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("redirect_uri is not a URL: %w", err)
	}
	if !u.IsAbs() || u.Host == "" || u.User != nil || u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("redirect_uri %q must be an absolute URL without user info or fragment", raw)
	}
	host := strings.ToLower(u.Hostname())
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return fmt.Errorf("redirect_uri %q uses localhost, which Visma Connect does not allow; use 127.0.0.1 or app.local", raw)
	}
	switch {
	case u.Scheme == "http" && host == "127.0.0.1":
	case u.Scheme == "https" && host == "app.local":
	default:
		return fmt.Errorf("redirect_uri %q is not registered for client %s (allowed: http://127.0.0.1:*, https://app.local:*)", raw, c.id)
	}
	return nil
}

type user struct {
	sub      string
	email    string
	name     string
	password string
}

var clients = map[string]*client{
	ServiceClientID: {
		id:      ServiceClientID,
		secret:  ServiceClientSecret,
		name:    "nxtcron sandbox service",
		grants:  []string{GrantClientCredentials},
		scopes:  ServiceClientScopes,
		apiPath: PathGraphQLService,
	},
	WebClientID: {
		id:      WebClientID,
		secret:  WebClientSecret,
		name:    "nxtcron sandbox web",
		grants:  []string{GrantAuthorizationCode, GrantRefreshToken},
		scopes:  WebClientScopes,
		apiPath: PathGraphQL,
	},
}

var users = []*user{
	{sub: "3f1c9a52-6b0e-4d8e-9a57-0c2b8f7d1e01", email: JobUserEmail, name: "Job User", password: UserPassword},
	{sub: "8a2d4e77-19c3-4f60-b5a8-6e9d0c3b2f02", email: OtherUserEmail, name: "Other User", password: UserPassword},
}

func userByEmail(email string) *user {
	for _, u := range users {
		if strings.EqualFold(u.email, strings.TrimSpace(email)) {
			return u
		}
	}
	return nil
}

func userBySub(sub string) *user {
	for _, u := range users {
		if u.sub == sub {
			return u
		}
	}
	return nil
}
