//! The dashboard at `/`: server-rendered HTML with an inline SVG chart, no
//! script and nothing fetched from elsewhere. A read token, entered once,
//! picks the workspace and is kept in an HttpOnly, SameSite=Strict cookie;
//! every page is then rendered from the same store the API reads.

use axum::extract::{Query, State};
use axum::http::StatusCode;
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

const COOKIE: &str = "idfold_read";
/// Months in the chart: the latest this many with activity and the gaps between.
const CHART_MONTHS: usize = 12;
const LAST_RESPONSES: usize = 10;
/// How long a sign-in lasts.
const SESSION: time::Duration = time::Duration::hours(8);

#[derive(Debug, Deserialize)]
pub struct SignIn {
    token: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct Find {
    kind: Option<String>,
    value: Option<String>,
}

/// `GET /`: the dashboard of the signed-in workspace, or the sign-in form.
pub async fn dashboard(
    State(state): State<ReadState>,
    jar: CookieJar,
    Query(find): Query<Find>,
) -> Response {
    let Some(workspace) = signed_in(&state, &jar) else {
        return Html(sign_in_page(None).into_string()).into_response();
    };
    let page = state.blocking(|| overview(&state, &workspace, &find)).await;
    let mut response = match page {
        Ok(markup) => Html(markup.into_string()).into_response(),
        Err(error) => (
            error.status(),
            Html(error_page(&error.to_string()).into_string()),
        )
            .into_response(),
    };
    // Personal data: kept by no cache.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// `POST /dashboard/session`: checks the token, then keeps it in a cookie.
pub async fn sign_in(
    State(state): State<ReadState>,
    jar: CookieJar,
    Form(form): Form<SignIn>,
) -> Response {
    let token = form.token.trim().to_owned();
    if state.workspace_of_token(&token).is_none() {
        let page = sign_in_page(Some("That is not a read token of any workspace."));
        return (StatusCode::UNAUTHORIZED, Html(page.into_string())).into_response();
    }
    let cookie = Cookie::build((COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(SESSION)
        .build();
    (jar.add(cookie), Redirect::to("/")).into_response()
}

/// `POST /dashboard/logout`.
pub async fn sign_out(jar: CookieJar) -> Response {
    (
        jar.remove(Cookie::build(COOKIE).path("/")),
        Redirect::to("/"),
    )
        .into_response()
}

fn signed_in(state: &ReadState, jar: &CookieJar) -> Option<String> {
    state.workspace_of_token(jar.get(COOKIE)?.value())
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
    for profile in store.profiles(Some(workspace)) {
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
                                    td { code { (Value::Object(r.answers.clone()).to_string()) } }
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
        let found = state.store().lookup(workspace, &asked)?;
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
