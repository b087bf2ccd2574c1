//! The workload: visitors browse anonymously, see surveys, many sign in
//! (some on a device another user signed in on before), keep using the
//! product identified, answer surveys in steps, and get email-survey links.

use std::io::Write;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::civil_time::{days_from_civil, rfc3339};

#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    pub events: usize,
    pub workspaces: usize,
    pub seed: u64,
    /// Share of lines that are exact copies of an earlier line.
    pub duplicate_rate: f64,
    /// Share of events dated days before the stream's current time.
    pub late_rate: f64,
    /// (year, month) the workload starts in.
    pub start_month: (i32, u8),
    pub months: u8,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            events: 10_000,
            workspaces: 20,
            seed: 1,
            duplicate_rate: 0.02,
            late_rate: 0.01,
            start_month: (2026, 1),
            months: 3,
        }
    }
}

#[derive(Debug, Clone)]
struct Visitor {
    device: String,
    user: Option<String>,
    email: Option<String>,
    /// Visitors who will never sign in.
    stays_anonymous: bool,
    open_response: Option<(String, String)>,
}

#[derive(Debug, Default)]
struct Workspace {
    visitors: Vec<Visitor>,
    next_user: usize,
}

const TRACK_EVENTS: [&str; 6] = ["Page Viewed", "Signed In", "Report Exported", "Checkout", "Invite Sent", "Search"];
const PLANS: [&str; 4] = ["free", "pro", "team", "enterprise"];

struct Generator<'a> {
    spec: &'a WorkloadSpec,
    rng: SmallRng,
    workspaces: Vec<Workspace>,
    /// Cumulative weights: workspace k weighs 1/(k+1), a few big and many small.
    cumulative: Vec<f64>,
    emitted: usize,
    recent: Vec<String>,
    start: i64,
    span: i64,
}

impl<'a> Generator<'a> {
    fn new(spec: &'a WorkloadSpec) -> Self {
        let n = spec.workspaces.max(1);
        let mut total = 0.0;
        let cumulative = (0..n)
            .map(|k| {
                total += 1.0 / (k as f64 + 1.0);
                total
            })
            .collect();
        let (year, month) = spec.start_month;
        let start = days_from_civil(i64::from(year), u32::from(month)) * 86_400;
        let end_index = i64::from(month) - 1 + i64::from(spec.months.max(1));
        let end = days_from_civil(i64::from(year) + end_index / 12, (end_index % 12 + 1) as u32) * 86_400;
        Generator {
            spec,
            rng: SmallRng::seed_from_u64(spec.seed),
            workspaces: (0..n).map(|_| Workspace::default()).collect(),
            cumulative,
            emitted: 0,
            recent: Vec::new(),
            start,
            // Leave room for the jitter so the last events stay inside the span.
            span: end - start - 600,
        }
    }

    fn pick_workspace(&mut self) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let x = self.rng.gen::<f64>() * total;
        self.cumulative.partition_point(|&c| c < x).min(self.cumulative.len() - 1)
    }

    /// Time advances with the stream; a few events are dated days earlier.
    fn timestamp(&mut self) -> String {
        let progress = self.emitted as f64 / self.spec.events.max(1) as f64;
        let mut t = self.start + (progress * self.span as f64) as i64 + self.rng.gen_range(0..600);
        if self.rng.gen_bool(self.spec.late_rate.clamp(0.0, 1.0)) {
            t -= self.rng.gen_range(86_400..10 * 86_400);
        }
        rfc3339(t.max(self.start))
    }

    fn base(&mut self, kind: &str, ws: usize) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("type".into(), json!(kind));
        m.insert("message_id".into(), json!(format!("m-{}-{}", self.spec.seed, self.emitted)));
        m.insert("workspace_id".into(), json!(format!("ws-{ws}")));
        m.insert("timestamp".into(), json!(self.timestamp()));
        m
    }

    fn emit(&mut self, event: Map<String, Value>, out: &mut dyn FnMut(&str)) {
        if self.emitted >= self.spec.events {
            return;
        }
        let line = Value::Object(event).to_string();
        out(&line);
        self.emitted += 1;
        if self.recent.len() < 512 {
            self.recent.push(line);
        } else {
            let i = self.rng.gen_range(0..self.recent.len());
            self.recent[i] = line;
        }
        if self.emitted < self.spec.events && self.rng.gen_bool(self.spec.duplicate_rate.clamp(0.0, 1.0)) {
            let i = self.rng.gen_range(0..self.recent.len());
            let copy = self.recent[i].clone();
            out(&copy);
            self.emitted += 1;
        }
    }

    fn identifiers(m: &mut Map<String, Value>, v: &Visitor, with_device: bool) {
        if let Some(u) = &v.user {
            m.insert("user_id".into(), json!(u));
        }
        if with_device {
            m.insert("anonymous_id".into(), json!(v.device));
        }
    }

    fn new_visitor(&mut self, ws: usize) -> usize {
        let w = &mut self.workspaces[ws];
        let id = w.visitors.len();
        let stays_anonymous = self.rng.gen_bool(0.3);
        w.visitors.push(Visitor {
            device: format!("dev-{ws}-{id}"),
            user: None,
            email: None,
            stays_anonymous,
            open_response: None,
        });
        id
    }

    fn session(&mut self, out: &mut dyn FnMut(&str)) {
        let ws = self.pick_workspace();
        let known = self.workspaces[ws].visitors.len();
        let vi = if known < 3 || self.rng.gen_bool(0.35) {
            self.new_visitor(ws)
        } else {
            self.rng.gen_range(0..known)
        };
        for _ in 0..self.rng.gen_range(1..6) {
            let visitor = self.workspaces[ws].visitors[vi].clone();
            if visitor.user.is_none() {
                if !visitor.stays_anonymous && self.rng.gen_bool(0.25) {
                    self.sign_in(ws, vi, out);
                } else {
                    self.anonymous_event(ws, &visitor, out);
                }
            } else {
                self.identified_event(ws, vi, out);
            }
        }
    }

    fn sign_in(&mut self, ws: usize, vi: usize, out: &mut dyn FnMut(&str)) {
        let user_no = self.workspaces[ws].next_user;
        self.workspaces[ws].next_user += 1;
        let user = format!("user-{ws}-{user_no}");
        let email = self.rng.gen_bool(0.5).then(|| format!("{user}@example.com"));
        // Now and then a user signs in on a device someone else used before.
        let known = self.workspaces[ws].visitors.len();
        if known > 5 && self.rng.gen_bool(0.03) {
            let other = self.rng.gen_range(0..known);
            let shared = self.workspaces[ws].visitors[other].device.clone();
            self.workspaces[ws].visitors[vi].device = shared;
        }
        let v = &mut self.workspaces[ws].visitors[vi];
        v.user = Some(user.clone());
        v.email = email.clone();
        let v = v.clone();
        let mut m = self.base("identify", ws);
        m.insert("channel".into(), json!("web"));
        Self::identifiers(&mut m, &v, true);
        if let Some(e) = &email {
            m.insert("email".into(), json!(e));
        }
        let plan = PLANS[self.rng.gen_range(0..PLANS.len())];
        m.insert("traits".into(), json!({"name": format!("User {user_no}"), "plan": plan, "seats": self.rng.gen_range(1..50)}));
        self.emit(m, out);
    }

    fn anonymous_event(&mut self, ws: usize, v: &Visitor, out: &mut dyn FnMut(&str)) {
        let roll = self.rng.gen::<f64>();
        let mut m = if roll < 0.6 {
            let mut m = self.base("track", ws);
            m.insert("event".into(), json!(TRACK_EVENTS[0]));
            m.insert("properties".into(), json!({"path": format!("/p/{}", self.rng.gen_range(0..40))}));
            m
        } else {
            let mut m = self.base("survey", ws);
            m.insert("survey_id".into(), json!(format!("s-{}", self.rng.gen_range(0..5))));
            let action = if roll < 0.8 { "shown" } else if roll < 0.95 { "dismissed" } else { "responded" };
            m.insert("action".into(), json!(action));
            if action == "responded" {
                m.insert("answers".into(), json!({"nps": self.rng.gen_range(0..11)}));
            }
            m
        };
        m.insert("channel".into(), json!("web"));
        Self::identifiers(&mut m, v, true);
        self.emit(m, out);
    }

    fn identified_event(&mut self, ws: usize, vi: usize, out: &mut dyn FnMut(&str)) {
        let v = self.workspaces[ws].visitors[vi].clone();
        let roll = self.rng.gen::<f64>();
        let mut m;
        if roll < 0.45 {
            m = self.base("track", ws);
            m.insert("event".into(), json!(TRACK_EVENTS[self.rng.gen_range(0..TRACK_EVENTS.len())]));
            m.insert("channel".into(), json!("web"));
            Self::identifiers(&mut m, &v, true);
        } else if roll < 0.55 {
            m = self.base("traits", ws);
            Self::identifiers(&mut m, &v, false);
            m.insert("traits".into(), json!({"plan": PLANS[self.rng.gen_range(0..PLANS.len())]}));
            m.insert("set_once".into(), json!({"first_seen_plan": "free"}));
            if self.rng.gen_bool(0.2) {
                m.insert("unset".into(), json!(["seats"]));
            }
        } else if roll < 0.85 {
            m = self.base("survey", ws);
            m.insert("channel".into(), json!("web"));
            Self::identifiers(&mut m, &v, true);
            let survey = format!("s-{}", self.rng.gen_range(0..5));
            if let Some((open_survey, response)) = v.open_response.clone() {
                // The second step of a response saved in two parts.
                m.insert("survey_id".into(), json!(open_survey));
                m.insert("action".into(), json!("responded"));
                m.insert("response_id".into(), json!(response));
                m.insert("answers".into(), json!({"comment": "thanks"}));
                self.workspaces[ws].visitors[vi].open_response = None;
            } else {
                let action = ["shown", "dismissed", "responded"][self.rng.gen_range(0..3)];
                m.insert("survey_id".into(), json!(survey));
                m.insert("action".into(), json!(action));
                if action == "responded" {
                    let response = format!("r-{}-{}", self.spec.seed, self.emitted);
                    m.insert("response_id".into(), json!(response));
                    m.insert("answers".into(), json!({"nps": self.rng.gen_range(0..11)}));
                    if self.rng.gen_bool(0.3) {
                        self.workspaces[ws].visitors[vi].open_response = Some((survey, response));
                    }
                }
            }
        } else if roll < 0.93 {
            // An email-survey link: the email alone identifies the person.
            m = self.base("survey", ws);
            m.insert("channel".into(), json!("email"));
            let email = v.email.clone().unwrap_or_else(|| format!("reader-{ws}-{}@example.org", self.rng.gen_range(0..500)));
            m.insert("email".into(), json!(email));
            m.insert("survey_id".into(), json!("s-email"));
            m.insert("action".into(), json!("responded"));
            m.insert("answers".into(), json!({"csat": self.rng.gen_range(1..6)}));
            m.insert("context".into(), json!({"campaign": "newsletter"}));
        } else {
            m = self.base("track", ws);
            m.insert("channel".into(), json!("mobile"));
            m.insert("event".into(), json!("App Opened"));
            Self::identifiers(&mut m, &v, false);
            if let Some(e) = &v.email {
                m.insert("email".into(), json!(e));
            }
        }
        self.emit(m, out);
    }
}

/// Streams the workload as NDJSON.
pub fn write_ndjson(spec: &WorkloadSpec, out: &mut dyn Write) -> std::io::Result<()> {
    let mut generator = Generator::new(spec);
    let mut result = Ok(());
    while generator.emitted < spec.events && result.is_ok() {
        generator.session(&mut |line| {
            if result.is_ok() {
                result = out.write_all(line.as_bytes()).and_then(|()| out.write_all(b"\n"));
            }
        });
    }
    result
}

/// The workload as lines (no newlines).
pub fn generate(spec: &WorkloadSpec) -> Vec<String> {
    let mut generator = Generator::new(spec);
    let mut lines = Vec::with_capacity(spec.events);
    while generator.emitted < spec.events {
        generator.session(&mut |line| lines.push(line.to_owned()));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn deterministic_exact_count_and_well_formed() {
        let spec = WorkloadSpec { events: 5_000, ..WorkloadSpec::default() };
        let lines = generate(&spec);
        assert_eq!(lines.len(), 5_000);
        assert_eq!(lines, generate(&spec));
        assert_ne!(lines, generate(&WorkloadSpec { seed: 2, ..spec.clone() }));
        let mut streamed = Vec::new();
        write_ndjson(&spec, &mut streamed).expect("in memory");
        assert_eq!(String::from_utf8(streamed).expect("utf8"), lines.join("\n") + "\n");

        let mut workspaces = HashSet::new();
        let mut months = HashSet::new();
        for line in &lines {
            let v: Value = serde_json::from_str(line).expect("JSON");
            let has = |k: &str| v.get(k).is_some();
            assert!(has("user_id") || has("email") || has("anonymous_id"), "{line}");
            let kind = v["type"].as_str().unwrap_or_default();
            if kind == "identify" || kind == "traits" || v["channel"] == "mobile" {
                assert!(has("user_id") || has("email"), "{line}");
            }
            workspaces.insert(v["workspace_id"].to_string());
            months.insert(v["timestamp"].as_str().unwrap_or_default()[..7].to_owned());
        }
        assert!(workspaces.len() > 5);
        assert_eq!(months.len(), 3, "{months:?}");
    }

    #[test]
    fn about_the_requested_share_of_lines_are_redeliveries() {
        let lines = generate(&WorkloadSpec { events: 20_000, ..WorkloadSpec::default() });
        let distinct: HashSet<&String> = lines.iter().collect();
        let duplicates = lines.len() - distinct.len();
        assert!((200..600).contains(&duplicates), "{duplicates}");
    }
}
