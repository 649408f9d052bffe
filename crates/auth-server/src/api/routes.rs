//! The route table: every fact about a route that middleware needs —
//! template (also the metric label), methods (`Allow` on 405), error family,
//! caching, content-security policy, rate-limit membership — in one place.
//! A test holds it equal to the OpenAPI document, so a new endpoint is one
//! entry here plus its handler.

use poem::http::Method;

/// The error shape a route answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFamily {
    /// RFC 6749 §5.2 `{"error": ...}`; responses are never cached.
    OAuth,
    /// RFC 9457 problem details.
    Problem,
    /// An HTML error page (the hosted pages and `/authorize`); never cached.
    Page,
}

/// The content-security policy a route's responses carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Csp {
    /// Nothing may load: JSON only.
    Api,
    /// Swagger UI's page needs its inline script and styles.
    Docs,
    /// The hosted pages: our stylesheet, a logo from anywhere over https,
    /// no script at all.
    Page,
}

/// Which requests of a route count against the per-address rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    None,
    /// `POST`s only (they cost an Argon2 hash or a stored record).
    Posts,
    /// Every request (`/authorize`: each may store a pending request).
    Every,
}

/// One route.
#[derive(Debug)]
pub struct RouteSpec {
    /// The path as routed (a `{name}` segment matches any one segment),
    /// and the `route` label of the HTTP metrics.
    pub template: &'static str,
    /// Whether every path below `template` belongs to it too (`/docs/...`).
    pub prefix: bool,
    /// The methods it answers, as `Allow` lists them.
    pub methods: &'static [Method],
    pub errors: ErrorFamily,
    pub csp: Csp,
    /// What counts against the per-address rate limit.
    pub limit: Limit,
    /// Part of the OpenAPI document (the document and Swagger UI are not).
    pub documented: bool,
    /// Responses carry credentials, personal data or CSRF tokens:
    /// `Cache-Control: no-store` (RFC 6749 §5.1, OpenID Connect Core §5.3).
    pub no_store: bool,
}

const GET: &[Method] = &[Method::GET, Method::HEAD];
const POST: &[Method] = &[Method::POST];
const GET_POST: &[Method] = &[Method::GET, Method::HEAD, Method::POST];
const DELETE: &[Method] = &[Method::DELETE];
const GET_PATCH_DELETE: &[Method] = &[Method::GET, Method::HEAD, Method::PATCH, Method::DELETE];

/// A documented JSON route answering in problem details.
const fn api(template: &'static str, methods: &'static [Method]) -> RouteSpec {
    RouteSpec {
        template,
        prefix: false,
        methods,
        errors: ErrorFamily::Problem,
        csp: Csp::Api,
        limit: Limit::None,
        documented: true,
        no_store: false,
    }
}

/// A documented JSON route whose answers are about the token's person.
const fn personal(template: &'static str, methods: &'static [Method]) -> RouteSpec {
    RouteSpec {
        no_store: true,
        ..api(template, methods)
    }
}

/// A documented OAuth endpoint.
const fn oauth(template: &'static str, methods: &'static [Method]) -> RouteSpec {
    RouteSpec {
        errors: ErrorFamily::OAuth,
        no_store: true,
        ..api(template, methods)
    }
}

/// An administration route: personal data and secrets, never cached.
const fn admin(template: &'static str, methods: &'static [Method]) -> RouteSpec {
    personal(template, methods)
}

const fn rate_limited(route: RouteSpec) -> RouteSpec {
    RouteSpec {
        limit: Limit::Posts,
        ..route
    }
}

/// A hosted page: HTML, form posts rate limited, not in the OpenAPI document.
const fn page(template: &'static str) -> RouteSpec {
    RouteSpec {
        errors: ErrorFamily::Page,
        csp: Csp::Page,
        limit: Limit::Posts,
        documented: false,
        no_store: true,
        ..api(template, GET_POST)
    }
}

/// Every route the server answers.
pub const ROUTES: &[RouteSpec] = &[
    rate_limited(api("/users", POST)),
    personal("/users/me", GET),
    personal("/users/me/password", POST),
    rate_limited(personal("/users/me/email", POST)),
    rate_limited(personal("/users/me/email/verification", POST)),
    rate_limited(api("/password/forgot", POST)),
    rate_limited(oauth("/token", POST)),
    RouteSpec {
        limit: Limit::Every,
        documented: true,
        ..page("/authorize")
    },
    page("/sign-in"),
    page("/sign-up"),
    page("/consent"),
    page("/forgot-password"),
    page("/password/reset"),
    page("/email/confirm"),
    page("/sign-in/factor"),
    RouteSpec {
        methods: POST,
        ..page("/sign-in/passkey")
    },
    RouteSpec {
        methods: POST,
        ..page("/passkeys/options")
    },
    RouteSpec {
        prefix: true,
        ..page("/account")
    },
    RouteSpec {
        documented: true,
        ..page("/logout")
    },
    personal("/userinfo", GET_POST),
    RouteSpec {
        csp: Csp::Page,
        documented: false,
        ..api(crate::pages::STYLESHEET_PATH, GET)
    },
    RouteSpec {
        csp: Csp::Page,
        documented: false,
        ..api(crate::pages::passkeys::SCRIPT_PATH, GET)
    },
    oauth("/revoke", POST),
    oauth("/introspect", POST),
    api("/.well-known/openid-configuration", GET),
    api("/.well-known/oauth-authorization-server", GET),
    api("/.well-known/jwks.json", GET),
    admin("/admin/v1/users", GET_POST),
    admin("/admin/v1/users/{id}", GET_PATCH_DELETE),
    admin("/admin/v1/users/{id}/disable", POST),
    admin("/admin/v1/users/{id}/enable", POST),
    admin("/admin/v1/users/{id}/password", POST),
    admin("/admin/v1/users/{id}/reset-factors", POST),
    admin("/admin/v1/users/{id}/sessions", GET),
    admin("/admin/v1/sessions/{id}", DELETE),
    admin("/admin/v1/clients", GET_POST),
    admin("/admin/v1/clients/{id}", GET_PATCH_DELETE),
    admin("/admin/v1/clients/{id}/rotate-secret", POST),
    admin("/admin/v1/audit", GET),
    api("/healthz", GET),
    api("/readyz", GET),
    api("/metrics", GET),
    RouteSpec {
        documented: false,
        ..api("/openapi.json", GET)
    },
    RouteSpec {
        prefix: true,
        csp: Csp::Docs,
        documented: false,
        ..api("/docs", GET)
    },
];

/// The metric label of paths no route serves: raw paths (and whatever an
/// attacker puts in them) never become label values.
pub const UNMATCHED: &str = "unmatched";

/// The route serving `path`, if any.
pub fn find(path: &str) -> Option<&'static RouteSpec> {
    ROUTES.iter().find(|route| {
        path == route.template
            || (route.prefix
                && path
                    .strip_prefix(route.template)
                    .is_some_and(|rest| rest.starts_with('/')))
            || (route.template.contains('{') && matches_template(route.template, path))
    })
}

/// Whether `path` fits a template with `{name}` segments, each standing
/// for one non-empty segment.
fn matches_template(template: &str, path: &str) -> bool {
    let mut wanted = template.split('/');
    let mut given = path.split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// The `route` label for `path`.
pub fn template(path: &str) -> &'static str {
    find(path).map_or(UNMATCHED, |route| route.template)
}

/// The `Allow` header value for `path` (RFC 9110 §15.5.6).
pub fn allow_header(route: &RouteSpec) -> String {
    route
        .methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_find_their_route_and_nothing_else() {
        assert_eq!(template("/users/me"), "/users/me");
        assert_eq!(template("/docs"), "/docs");
        assert_eq!(template("/docs/index.css"), "/docs");
        assert_eq!(template("/docsx"), UNMATCHED);
        assert_eq!(template("/users/me/"), UNMATCHED);
        assert_eq!(template("/users/42"), UNMATCHED);
        assert_eq!(
            template("/admin/v1/users/0190aa00-0000-7000-8000-000000000000/sessions"),
            "/admin/v1/users/{id}/sessions"
        );
        assert_eq!(template("/admin/v1/users/x"), "/admin/v1/users/{id}");
        assert_eq!(template("/admin/v1/users//sessions"), UNMATCHED);
        assert_eq!(template("/admin/v1/users/x/y"), UNMATCHED);
        assert_eq!(template("/<script>"), UNMATCHED);
        let token = find("/token").map(|r| (r.errors, r.limit, allow_header(r)));
        assert_eq!(
            token,
            Some((ErrorFamily::OAuth, Limit::Posts, "POST".to_owned()))
        );
        let authorize = find("/authorize").map(|r| (r.errors, r.limit, allow_header(r)));
        assert_eq!(
            authorize,
            Some((
                ErrorFamily::Page,
                Limit::Every,
                "GET, HEAD, POST".to_owned()
            ))
        );
        assert_eq!(
            find("/healthz").map(allow_header).as_deref(),
            Some("GET, HEAD")
        );
    }

    #[test]
    fn templates_are_unique() {
        let mut templates: Vec<_> = ROUTES.iter().map(|r| r.template).collect();
        templates.sort_unstable();
        templates.dedup();
        assert_eq!(templates.len(), ROUTES.len());
    }
}
