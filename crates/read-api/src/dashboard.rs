//! The dashboard at `/`: server-rendered HTML with an inline SVG chart, no
//! script and nothing fetched from elsewhere. A read token, entered once,
//! opens a server-side session of its workspace; the cookie holds only the
//! session's random id (HttpOnly, SameSite=Strict, Secure when configured).
//! Every page is then rendered from the same store the API reads.

use std::time::Instant;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, X_FRAME_OPTIONS};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use idfold_events::{parse_month, Month};
use idfold_projector::MauRow;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ReadError;
use crate::profiles::{answer, lookup_identifier};
use crate::responses::{responses_of, ResponseFilter, ResponseRow};
use crate::routes::ReadState;
use crate::session::SessionStore;

/// Not the name the raw-token cookie had: such cookies are simply ignored.
const COOKIE: &str = "idfold_session";
/// Months in the chart: the latest this many with activity and the gaps between.
const CHART_MONTHS: usize = 12;
const LAST_RESPONSES: usize = 10;
/// The page needs its inline style and the empty favicon, nothing else; its
/// forms post to itself; no other site may frame it.
const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// How the dashboard's cookie is sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct DashboardSettings {
    /// Mark the cookie `Secure` (the browser then sends it over HTTPS
    /// only). Set it whenever the dashboard is reached over TLS, e.g.
    /// behind a proxy that terminates it: idfold itself serves plain HTTP
    /// and cannot tell.
    pub secure_cookie: bool,
}

/// The dashboard's sessions and cookie settings, held by [`ReadState`].
#[derive(Debug)]
pub(crate) struct Dashboard {
    sessions: SessionStore,
    settings: DashboardSettings,
}

impl Dashboard {
    pub(crate) fn new(settings: DashboardSettings) -> Dashboard {
        Dashboard {
            sessions: SessionStore::default(),
            settings,
        }
    }

    fn cookie(&self, value: String) -> Cookie<'static> {
        let max_age = time::Duration::try_from(self.sessions.ttl()).unwrap_or(time::Duration::ZERO);
        Cookie::build((COOKIE, value))
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.settings.secure_cookie)
            .path("/")
            .max_age(max_age)
            .build()
    }

    /// Tells the browser to drop the cookie (same attributes, or it would
    /// be another cookie).
    fn removal(&self) -> Cookie<'static> {
        let mut cookie = self.cookie(String::new());
        cookie.make_removal();
        cookie
    }
}

#[derive(Debug, Deserialize)]
pub struct SignIn {
    token: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct Find {
    kind: Option<String>,
    value: Option<String>,
}

/// `GET /`: the dashboard of the signed-in workspace, or the sign-in form
/// (401 with the cookie dropped when it names a session that ended).
pub async fn dashboard(
    State(state): State<ReadState>,
    jar: CookieJar,
    Query(find): Query<Find>,
) -> Response {
    let dashboard = state.dashboard();
    let session = jar.get(COOKIE).map(|c| c.value().to_owned());
    let workspace = session
        .as_deref()
        .and_then(|id| dashboard.sessions.workspace(id, Instant::now()));
    let Some(workspace) = workspace else {
        let response = if session.is_some() {
            let page = sign_in_page(Some("Your session has ended: sign in again."));
            (
                StatusCode::UNAUTHORIZED,
                jar.remove(dashboard.removal()),
                Html(page.into_string()),
            )
                .into_response()
        } else {
            Html(sign_in_page(None).into_string()).into_response()
        };
        return page_headers(response);
    };
    let page = state
        .workspace_read(&workspace, || overview(&state, &workspace, &find))
        .await;
    let response = match page {
        Ok(markup) => Html(markup.into_string()).into_response(),
        Err(error) => (
            error.status(),
            Html(error_page(&error.to_string()).into_string()),
        )
            .into_response(),
    };
    page_headers(response)
}

/// Personal data: kept by no cache, framed by no other site.
fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    response
}

/// `POST /dashboard/session`: checks the token, then opens a session of its
/// workspace (ending the one the browser had, if any).
pub async fn sign_in(
    State(state): State<ReadState>,
    _: SameOrigin,
    jar: CookieJar,
    Form(form): Form<SignIn>,
) -> Response {
    let dashboard = state.dashboard();
    let Some(workspace) = state.workspace_of_token(form.token.trim()) else {
        let page = sign_in_page(Some("That is not a read token of any workspace."));
        return page_headers((StatusCode::UNAUTHORIZED, Html(page.into_string())).into_response());
    };
    if let Some(old) = jar.get(COOKIE) {
        dashboard.sessions.revoke(old.value());
    }
    let session = dashboard.sessions.create(&workspace, Instant::now());
    (jar.add(dashboard.cookie(session)), Redirect::to("/")).into_response()
}

/// `POST /dashboard/logout`: ends the session on the server, so the cookie
/// opens nothing even if a copy of it is kept.
pub async fn sign_out(State(state): State<ReadState>, _: SameOrigin, jar: CookieJar) -> Response {
    let dashboard = state.dashboard();
    if let Some(session) = jar.get(COOKIE) {
        dashboard.sessions.revoke(session.value());
    }
    (jar.remove(dashboard.removal()), Redirect::to("/")).into_response()
}

/// A dashboard POST that comes from the dashboard's own origin (or from no
/// browser at all): refused with 403 `cross_origin` otherwise, so that
/// another site cannot sign a visitor in to a workspace of its choosing
/// (login CSRF) or out.
#[derive(Debug)]
pub struct SameOrigin;

impl<S: Send + Sync> FromRequestParts<S> for SameOrigin {
    type Rejection = ReadError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ReadError> {
        let authority = parts.uri.authority().map(|a| a.as_str());
        same_origin(&parts.headers, authority)
            .map(|()| SameOrigin)
            .map_err(ReadError::CrossOrigin)
    }
}

/// Browsers send `Origin` on every POST (`Referer` is the fallback for
/// those that do not), and `Sec-Fetch-Site`: it must name the host the
/// request was sent to (`Host`, or the URI's authority on HTTP/2). A request
/// with neither `Origin` nor `Referer` comes from no browser (curl, a
/// script) and cannot be forged by another site: it is let through.
fn same_origin(headers: &HeaderMap, uri_authority: Option<&str>) -> Result<(), &'static str> {
    let text = |name| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    if text(header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site") {
        return Err("the browser says this request comes from another site");
    }
    let (sender, what) = match (text(header::ORIGIN), text(header::REFERER)) {
        (Some(origin), _) => (origin, "Origin"),
        (None, Some(referer)) => (referer, "Referer"),
        (None, None) => return Ok(()),
    };
    let host = text(header::HOST)
        .or(uri_authority)
        .ok_or("the request names no Host to compare its Origin with")?;
    let sender = Site::of_url(sender).ok_or(match what {
        "Origin" => "the Origin header is opaque or not a URL",
        _ => "the Referer header is not a URL",
    })?;
    let receiver = authority(host, sender.default_port).ok_or("the Host header is not a host")?;
    if (receiver.0 == sender.host) && (receiver.1 == sender.port) {
        Ok(())
    } else {
        Err(match what {
            "Origin" => "the Origin header names another site than the Host",
            _ => "the Referer header names another site than the Host",
        })
    }
}

/// Host and port of an `Origin` or `Referer`, and its scheme's default port
/// (what a `Host` without a port means).
#[derive(Debug, PartialEq)]
struct Site {
    host: String,
    port: u16,
    default_port: u16,
}

impl Site {
    fn of_url(url: &str) -> Option<Site> {
        let (scheme, rest) = url.split_once("://")?;
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (host, port) = authority(&rest[..end], default_port)?;
        Some(Site {
            host,
            port,
            default_port,
        })
    }
}

/// `host[:port]` (an IPv6 host in brackets) as lower-case host and port.
fn authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(port) => port.parse().ok()?,
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // No favicon request: nothing is fetched but the page.
                link rel="icon" href="data:,";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
}

fn sign_in_page(problem: Option<&str>) -> Markup {
    layout(
        "idfold",
        html! {
            main.narrow {
                h1 { "idfold" }
                p { "Monthly active users, profiles, responses and segments of a workspace. Sign in with one of its read tokens." }
                @if let Some(problem) = problem { p.problem { (problem) } }
                form method="post" action="/dashboard/session" {
                    label for="token" { "Read token" }
                    input #token type="password" name="token" autocomplete="off" required;
                    button type="submit" { "Open the dashboard" }
                }
            }
        },
    )
}

fn error_page(message: &str) -> Markup {
    layout(
        "idfold",
        html! { main.narrow { h1 { "idfold" } p.problem { (message) } a href="/" { "Back" } } },
    )
}

/// The workspace's page: MAU, the last responses, a lookup, segments.
fn overview(state: &ReadState, workspace: &str, find: &Find) -> Result<Markup, ReadError> {
    let store = state.store();
    let rows = chart_rows(workspace, store.mau_rows(Some(workspace))?);
    let mut responses: Vec<ResponseRow> = Vec::new();
    let segments = state.segments().all(workspace)?;
    let mut sizes = vec![0usize; segments.len()];
    let at = state.now();
    for profile in store.profile_views(Some(workspace)) {
        let profile = profile?;
        responses.extend(responses_of(&profile, &ResponseFilter::default()));
        // Only the newest are shown: keep memory to what is.
        if responses.len() > 4 * LAST_RESPONSES {
            newest_first(&mut responses);
            responses.truncate(LAST_RESPONSES);
        }
        for ((_, _, filter), size) in segments.iter().zip(sizes.iter_mut()) {
            if filter.matches(&profile, at) {
                *size += 1;
            }
        }
    }
    newest_first(&mut responses);
    responses.truncate(LAST_RESPONSES);
    let found = lookup(state, workspace, find);
    Ok(layout(
        &format!("idfold · {workspace}"),
        html! {
            header {
                h1 { "idfold " span.workspace { (workspace) } }
                form method="post" action="/dashboard/logout" { button type="submit" { "Sign out" } }
            }
            section {
                h2 { "Monthly active users" }
                p.legend {
                    span.key.identified {} "identified (every user identified in the month) "
                    span.key.anonymous {} "anonymous (visitors who saw, dismissed or answered a survey)"
                }
                (chart(&rows))
                table.mau {
                    thead { tr { th { "month" } th { "identified" } th { "anonymous" } th { "total" } } }
                    tbody {
                        @for row in rows.iter().rev() {
                            tr { td { (row.month) } td { (row.identified) } td { (row.anonymous) } td { (row.total) } }
                        }
                    }
                }
            }
            section {
                h2 { "Last responses" }
                @if responses.is_empty() { p { "No responses yet." } } @else {
                    table.responses {
                        thead { tr { th { "time" } th { "survey" } th { "profile" } th { "answers" } } }
                        tbody {
                            @for r in &responses {
                                tr {
                                    td { (r.timestamp) } td { (r.survey_id) } td { (r.profile_id) }
                                    td { code { (serde_json::to_string(&r.answers).unwrap_or_default()) } }
                                }
                            }
                        }
                    }
                }
            }
            section {
                h2 { "Profile lookup" }
                form.lookup method="get" action="/" {
                    select name="kind" {
                        @for (kind, label) in [("user_id", "user id"), ("email", "email"), ("anonymous_id", "anonymous id")] {
                            option value=(kind) selected[find.kind.as_deref() == Some(kind)] { (label) }
                        }
                    }
                    input type="text" name="value" value=[find.value.as_deref()] required;
                    button type="submit" { "Look up" }
                }
                @match found {
                    Some(Ok(profile)) => pre.profile { (serde_json::to_string_pretty(&profile).unwrap_or_default()) },
                    Some(Err(message)) => p.problem { (message) },
                    None => {},
                }
            }
            section {
                h2 { "Segments" }
                @if segments.is_empty() { p { "No segments yet: PUT /v1/workspaces/" (workspace) "/segments/NAME." } } @else {
                    table.segments {
                        thead { tr { th { "segment" } th { "members" } } }
                        tbody {
                            @for ((name, _, _), size) in segments.iter().zip(&sizes) {
                                tr { td { (name) } td { (size) } }
                            }
                        }
                    }
                }
            }
        },
    ))
}

fn newest_first(responses: &mut [ResponseRow]) {
    responses.sort_by(|a, b| {
        b.timestamp
            .cmp(&a.timestamp)
            .then(a.response_id.cmp(&b.response_id))
    });
}

/// The looked-up profile, a reason it is not there, or nothing asked.
fn lookup(state: &ReadState, workspace: &str, find: &Find) -> Option<Result<Value, String>> {
    let value = find.value.as_deref().filter(|v| !v.trim().is_empty())?;
    let kind = find.kind.as_deref().unwrap_or("user_id");
    let asked = lookup_identifier(
        (kind == "user_id").then_some(value),
        (kind == "email").then_some(value),
        (kind == "anonymous_id").then_some(value),
    );
    let outcome = asked.and_then(|asked| {
        let found = state.store().lookup_view(workspace, &asked)?;
        answer(&asked, found)
    });
    Some(outcome.map_err(|e| e.to_string()))
}

/// The latest months with activity (at most `CHART_MONTHS`), gaps filled
/// with zeros, oldest first.
fn chart_rows(workspace: &str, rows: Vec<MauRow>) -> Vec<MauRow> {
    let months: Vec<Month> = rows.iter().filter_map(|r| parse_month(&r.month)).collect();
    let (Some(&first), Some(&last)) = (months.first(), months.last()) else {
        return Vec::new();
    };
    let mut all = vec![first];
    while let Some(&month) = all.last() {
        if month >= last {
            break;
        }
        all.push(month.next());
    }
    let skip = all.len().saturating_sub(CHART_MONTHS);
    all.into_iter()
        .skip(skip)
        .map(|month| {
            let name = month.to_string();
            rows.iter()
                .find(|r| r.month == name)
                .cloned()
                .unwrap_or(MauRow {
                    workspace_id: workspace.to_owned(),
                    month: name,
                    identified: 0,
                    anonymous: 0,
                    total: 0,
                })
        })
        .collect()
}

/// Stacked bars, identified below anonymous, each with its numbers.
fn chart(rows: &[MauRow]) -> Markup {
    const BAR: usize = 44;
    const GAP: usize = 16;
    const HEIGHT: f64 = 200.0;
    const TOP: f64 = 24.0;
    let max = rows.iter().map(|r| r.total).max().unwrap_or(0).max(1) as f64;
    let width = rows.len() * (BAR + GAP) + GAP;
    let scale = |n: u64| n as f64 / max * HEIGHT;
    let base = TOP + HEIGHT;
    html! {
        svg.chart width=(width) height=(base + 40.0) viewBox=(format!("0 0 {width} {}", base + 40.0))
            role="img" aria-label="Monthly active users per month, identified and anonymous" {
            // SVG elements are closed explicitly: in HTML, `<rect>` alone
            // would hold what follows it.
            line x1="0" y1=(base) x2=(width) y2=(base) stroke="#999" {}
            @for (i, row) in rows.iter().enumerate() {
                @let x = GAP + i * (BAR + GAP);
                @let identified = scale(row.identified);
                @let anonymous = scale(row.anonymous);
                g.bar data-month=(row.month) data-identified=(row.identified) data-anonymous=(row.anonymous) {
                    title { (row.month) ": " (row.identified) " identified, " (row.anonymous) " anonymous" }
                    rect.identified x=(x) y=(base - identified) width=(BAR) height=(identified) {}
                    rect.anonymous x=(x) y=(base - identified - anonymous) width=(BAR) height=(anonymous) {}
                    text.total x=(x + BAR / 2) y=(base - identified - anonymous - 6.0) text-anchor="middle" { (row.total) }
                    text.month x=(x + BAR / 2) y=(base + 16.0) text-anchor="middle" { (row.month) }
                    text.split x=(x + BAR / 2) y=(base + 32.0) text-anchor="middle" { (row.identified) " / " (row.anonymous) }
                }
            }
        }
    }
}

const STYLE: &str = "
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
main.narrow { max-width: 28rem; margin: 4rem auto; background: #fff; padding: 2rem; border-radius: 8px; }
header { display: flex; justify-content: space-between; align-items: center; padding: 1rem 2rem; background: #1d2330; color: #fff; }
header h1 { margin: 0; font-size: 1.3rem; }
.workspace { color: #9fc1ff; }
section { background: #fff; margin: 1.5rem 2rem; padding: 1rem 1.5rem; border-radius: 8px; overflow-x: auto; }
h2 { font-size: 1.1rem; margin-top: 0; }
table { border-collapse: collapse; margin-top: 1rem; }
th, td { text-align: left; padding: .25rem .75rem; border-bottom: 1px solid #e4e7ec; }
td code { font-size: .85rem; }
.problem { color: #b42318; }
rect.identified, .key.identified { fill: #3b6fd8; background: #3b6fd8; }
rect.anonymous, .key.anonymous { fill: #f2a33a; background: #f2a33a; }
.key { display: inline-block; width: .8rem; height: .8rem; margin: 0 .3rem 0 1rem; vertical-align: middle; }
svg text { font-size: 11px; fill: #1d2330; }
svg text.total { font-weight: 600; }
pre.profile { background: #f6f7f9; padding: 1rem; max-height: 24rem; overflow: auto; }
label { display: block; margin: 1rem 0 .25rem; }
input, select, button { font: inherit; padding: .35rem .6rem; }
input#token { width: 100%; box-sizing: border-box; }
button { margin-top: .75rem; cursor: pointer; }
";

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pairs: &[(&'static str, &str)]) -> Result<(), &'static str> {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).expect("a header value"));
        }
        same_origin(&headers, None)
    }

    #[test]
    fn a_post_from_the_dashboard_s_own_origin_passes() {
        for pairs in [
            vec![
                ("host", "127.0.0.1:8088"),
                ("origin", "http://127.0.0.1:8088"),
            ],
            vec![
                ("host", "Dash.Example.com"),
                ("origin", "https://dash.example.com"),
            ],
            vec![
                ("host", "dash.example.com:443"),
                ("origin", "https://dash.example.com"),
            ],
            vec![("host", "[::1]:8088"), ("origin", "http://[::1]:8088")],
            vec![
                ("host", "127.0.0.1:8088"),
                ("referer", "http://127.0.0.1:8088/?kind=email"),
                ("sec-fetch-site", "same-origin"),
            ],
            // No browser sent it: nothing another site could forge.
            vec![("host", "127.0.0.1:8088")],
        ] {
            assert_eq!(check(&pairs), Ok(()), "{pairs:?}");
        }
    }

    #[test]
    fn a_post_from_another_origin_is_refused() {
        for pairs in [
            vec![
                ("host", "127.0.0.1:8088"),
                ("origin", "http://evil.example"),
            ],
            vec![
                ("host", "127.0.0.1:8088"),
                ("origin", "http://127.0.0.1:8089"),
            ],
            vec![("host", "127.0.0.1"), ("origin", "http://127.0.0.1:8088")],
            vec![
                ("host", "dash.example.com"),
                ("origin", "http://dash.example.com.evil.example"),
            ],
            vec![("host", "127.0.0.1:8088"), ("origin", "null")],
            vec![("host", "127.0.0.1:8088"), ("origin", "file://")],
            vec![
                ("host", "127.0.0.1:8088"),
                ("referer", "http://evil.example/page"),
            ],
            vec![
                ("host", "127.0.0.1:8088"),
                ("referer", "http://127.0.0.1:8088@evil.example/"),
            ],
            vec![("host", "127.0.0.1:8088"), ("sec-fetch-site", "cross-site")],
            // The Origin wins over a Referer that would pass.
            vec![
                ("host", "127.0.0.1:8088"),
                ("origin", "http://evil.example"),
                ("referer", "http://127.0.0.1:8088/"),
            ],
            vec![("origin", "http://127.0.0.1:8088")],
            vec![("host", "a:b:c"), ("origin", "http://a")],
        ] {
            assert!(check(&pairs).is_err(), "{pairs:?}");
        }
    }

    #[test]
    fn on_http2_the_uri_s_authority_stands_for_host() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://dash.example.com"),
        );
        assert_eq!(same_origin(&headers, Some("dash.example.com")), Ok(()));
        assert!(same_origin(&headers, Some("evil.example")).is_err());
    }
}
