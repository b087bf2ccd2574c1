//! How people behave: one session is a short burst of events by one visitor,
//! user or email reader in one workspace. Visitors browse anonymously and
//! see surveys, many sign up or sign in (some on a device someone else used
//! before), users keep using the product on 1-3 devices and answer surveys
//! (sometimes in two steps), email-survey links carry only an email, and
//! backends send events with user_id and email.
//!
//! A session yields [`Draft`]s: events without `message_id` and `timestamp`,
//! which the stream adds when the line is emitted.

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::Rng;

use crate::json::Fields;
use crate::population::{index, skewed_index, Workspace, MAX_DEVICES_PER_USER};

/// An event still missing its `message_id` and `timestamp`.
#[derive(Debug)]
pub(crate) struct Draft {
    pub kind: &'static str,
    pub workspace: usize,
    /// `channel`, the identifiers and the type-specific fields.
    pub body: Fields,
}

/// Who sends an event, and on which channel.
#[derive(Debug, Clone, Default)]
struct Who {
    channel: &'static str,
    user: Option<u32>,
    email: Option<String>,
    anonymous: Option<String>,
}

const PAGES: [&str; 8] = [
    "/",
    "/pricing",
    "/features",
    "/blog/launch",
    "/docs",
    "/login",
    "/dashboard",
    "/settings",
];
const FEATURES: [&str; 6] = [
    "reports",
    "dashboards",
    "exports",
    "alerts",
    "integrations",
    "segments",
];
const SCREENS: [&str; 4] = ["Home", "Inbox", "Reports", "Settings"];
const PLANS: [&str; 4] = ["free", "pro", "team", "enterprise"];
const COMMENTS: [&str; 6] = [
    "great",
    "ok",
    "too slow",
    "love the new reports",
    "missing csv export",
    "confusing pricing",
];
const CAMPAIGNS: [&str; 3] = ["newsletter", "onboarding", "renewal"];
/// Surveys per workspace: `s-0` .. `s-{SURVEYS-1}`.
const SURVEYS: u32 = 6;

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[index(rng, items.len())]
}

/// Everyone in every workspace, and the ids handed out so far.
#[derive(Debug)]
pub(crate) struct World {
    seed: u64,
    workspaces: Vec<Workspace>,
    /// Cumulative weights: workspace k weighs 1/(k+1), so a few are big
    /// and many are small.
    cumulative: Vec<f64>,
    next_response: u64,
}

/// One session's events, and the users and devices it holds until all of
/// them are emitted (so sessions interleaved in the stream never see a user
/// or device before the session that creates it has introduced it).
#[derive(Debug)]
pub(crate) struct Session {
    pub workspace: usize,
    pub drafts: VecDeque<Draft>,
    users: Vec<usize>,
    devices: Vec<usize>,
}

impl Session {
    fn hold(&mut self, w: &mut Workspace, user: Option<usize>, device: Option<usize>) {
        if let Some(u) = user {
            w.users[u].busy = true;
            self.users.push(u);
        }
        if let Some(d) = device {
            w.devices[d].busy = true;
            self.devices.push(d);
        }
    }

    fn push(&mut self, kind: &'static str, who: &Who, fill: impl FnOnce(&mut Fields)) {
        let mut body = Fields::new();
        body.str("channel", who.channel);
        if let Some(user) = who.user {
            body.fmt("user_id", format_args!("user-{user}"));
        }
        if let Some(email) = &who.email {
            body.str("email", email);
        }
        if let Some(anonymous) = &who.anonymous {
            body.str("anonymous_id", anonymous);
        }
        fill(&mut body);
        self.drafts.push_back(Draft {
            kind,
            workspace: self.workspace,
            body,
        });
    }
}

impl World {
    pub(crate) fn new(seed: u64, workspaces: usize) -> Self {
        let n = workspaces.max(1);
        let mut total = 0.0;
        let cumulative = (0..n)
            .map(|k| {
                total += 1.0 / (k as f64 + 1.0);
                total
            })
            .collect();
        World {
            seed,
            workspaces: (0..n).map(|_| Workspace::default()).collect(),
            cumulative,
            next_response: 0,
        }
    }

    fn pick_workspace(&self, rng: &mut StdRng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let x = rng.gen::<f64>() * total;
        self.cumulative
            .partition_point(|&c| c < x)
            .min(self.cumulative.len() - 1)
    }

    /// One session: at least one draft, in the order the events happen.
    pub(crate) fn session(&mut self, rng: &mut StdRng) -> Session {
        let ws = self.pick_workspace(rng);
        let mut out = Session {
            workspace: ws,
            drafts: VecDeque::new(),
            users: Vec::new(),
            devices: Vec::new(),
        };
        let roll: f64 = rng.gen();
        if roll < 0.33 {
            self.new_visitor(rng, ws, &mut out);
        } else if roll < 0.72 {
            self.returning_user(rng, ws, &mut out);
        } else if roll < 0.82 {
            self.returning_visitor(rng, ws, &mut out);
        } else if roll < 0.94 {
            self.email_link(rng, ws, &mut out);
        } else {
            self.backend(rng, ws, &mut out);
        }
        out
    }

    /// Frees what a fully emitted session held.
    pub(crate) fn release(&mut self, session: &Session) {
        let w = &mut self.workspaces[session.workspace];
        for &u in &session.users {
            w.users[u].busy = false;
        }
        for &d in &session.devices {
            w.devices[d].busy = false;
        }
    }

    /// A user no session in progress holds, favouring power users; `None`
    /// when none is found in a few tries.
    fn free_user(&self, rng: &mut StdRng, ws: usize, room_for_device: bool) -> Option<usize> {
        let users = &self.workspaces[ws].users;
        if users.is_empty() {
            return None;
        }
        (0..4).map(|_| skewed_index(rng, users.len())).find(|&u| {
            !users[u].busy && (!room_for_device || users[u].devices.len() < MAX_DEVICES_PER_USER)
        })
    }

    fn response_id(&mut self) -> String {
        self.next_response += 1;
        format!("r-{}-{}", self.seed, self.next_response)
    }

    // --- sessions -------------------------------------------------------

    /// A first visit from a new browser: anonymous browsing, then a sign-up,
    /// a sign-in to an existing account, or staying anonymous.
    fn new_visitor(&mut self, rng: &mut StdRng, ws: usize, out: &mut Session) {
        let w = &mut self.workspaces[ws];
        let device = w.new_device(rng, false);
        out.hold(w, None, Some(device));
        let anonymous = Who {
            channel: "web",
            anonymous: Some(w.devices[device].id.clone()),
            ..Who::default()
        };
        self.browse(rng, &anonymous, out);
        let fate: f64 = rng.gen();
        // An existing user with room for another device, if one is found quickly.
        let existing = if (0.45..0.6).contains(&fate) {
            self.free_user(rng, ws, true)
        } else {
            None
        };
        if fate < 0.45 {
            let user = self.sign_up(rng, ws, device, out);
            self.activity(rng, ws, user, device, out);
        } else if let Some(user) = existing {
            // An existing user on a new browser.
            out.hold(&mut self.workspaces[ws], Some(user), None);
            self.sign_in(rng, ws, user, device, out);
            self.activity(rng, ws, user, device, out);
        } else {
            let w = &mut self.workspaces[ws];
            w.anonymous.push(device);
            if rng.gen_bool(0.15) {
                // Leaves an email for the newsletter, without an account.
                let email = w.new_reader();
                out.push(
                    "identify",
                    &Who {
                        email: Some(email),
                        ..anonymous
                    },
                    |_| {},
                );
            }
        }
    }

    /// A visitor who never signed in comes back; now and then signs up.
    fn returning_visitor(&mut self, rng: &mut StdRng, ws: usize, out: &mut Session) {
        let w = &mut self.workspaces[ws];
        let slot = (0..4)
            .filter(|_| !w.anonymous.is_empty())
            .map(|_| index(rng, w.anonymous.len()))
            .find(|&slot| !w.devices[w.anonymous[slot]].busy);
        let Some(slot) = slot else {
            return self.new_visitor(rng, ws, out);
        };
        let device = w.anonymous[slot];
        out.hold(w, None, Some(device));
        let anonymous = Who {
            channel: "web",
            anonymous: Some(w.devices[device].id.clone()),
            ..Who::default()
        };
        self.browse(rng, &anonymous, out);
        if rng.gen_bool(0.1) {
            self.workspaces[ws].anonymous.swap_remove(slot);
            let user = self.sign_up(rng, ws, device, out);
            self.activity(rng, ws, user, device, out);
        }
    }

    /// A known user comes back: on one of their devices, on a new device, or
    /// on a device another user signed in on before (a shared computer).
    fn returning_user(&mut self, rng: &mut StdRng, ws: usize, out: &mut Session) {
        let Some(user) = self.free_user(rng, ws, false) else {
            return self.new_visitor(rng, ws, out);
        };
        let w = &mut self.workspaces[ws];
        let room = w.users[user].devices.len() < MAX_DEVICES_PER_USER;
        let roll: f64 = rng.gen();
        let shared = index(rng, w.devices.len());
        let shared_ok = !w.devices[shared].busy
            && w.devices[shared]
                .current_user
                .is_some_and(|other| other != user);
        let own = &w.users[user].devices;
        let own = Some(own[index(rng, own.len())]).filter(|&d| !w.devices[d].busy);
        if roll < 0.05 && room && shared_ok {
            out.hold(w, Some(user), Some(shared));
            self.sign_in(rng, ws, user, shared, out);
            self.activity(rng, ws, user, shared, out);
        } else if (roll < 0.15 || own.is_none()) && room {
            let mobile = rng.gen_bool(0.6);
            let device = w.new_device(rng, mobile);
            out.hold(w, Some(user), Some(device));
            if !mobile && rng.gen_bool(0.5) {
                let anonymous = Who {
                    channel: "web",
                    anonymous: Some(w.devices[device].id.clone()),
                    ..Who::default()
                };
                self.browse(rng, &anonymous, out);
            }
            self.sign_in(rng, ws, user, device, out);
            self.activity(rng, ws, user, device, out);
        } else if let Some(device) = own {
            out.hold(w, Some(user), Some(device));
            if w.devices[device].current_user != Some(user) {
                // Someone else signed in on this device since: sign back in.
                self.sign_in(rng, ws, user, device, out);
            }
            self.activity(rng, ws, user, device, out);
        } else {
            self.new_visitor(rng, ws, out);
        }
    }

    /// An email-survey or a link in an email: the email identifies the
    /// person, sometimes together with their user_id.
    fn email_link(&mut self, rng: &mut StdRng, ws: usize, out: &mut Session) {
        let w = &mut self.workspaces[ws];
        let channel = if rng.gen_bool(0.6) { "email" } else { "link" };
        let user = (!w.with_email.is_empty() && rng.gen_bool(0.55))
            .then(|| w.with_email[index(rng, w.with_email.len())])
            .filter(|&u| !w.users[u].busy);
        let who = if let Some(user) = user {
            out.hold(w, Some(user), None);
            let user = &w.users[user];
            let number = rng.gen_bool(0.3).then_some(user.number);
            Who {
                channel,
                user: number,
                email: user.email.clone(),
                anonymous: None,
            }
        } else {
            let email = if w.readers.is_empty() || rng.gen_bool(0.3) {
                w.new_reader()
            } else {
                w.readers[index(rng, w.readers.len())].clone()
            };
            Who {
                channel,
                email: Some(email),
                ..Who::default()
            }
        };
        let campaign = pick(rng, &CAMPAIGNS);
        if channel == "link" {
            out.push("track", &who, |f| {
                let mut p = Fields::new();
                p.str("campaign", campaign);
                f.str("event", "Link Opened").object("properties", &p);
            });
        }
        let survey = format!("s-{}", rng.gen_range(0..SURVEYS));
        if channel == "email" {
            out.push("survey", &who, |f| {
                f.str("survey_id", &survey).str("action", "shown");
            });
        }
        if rng.gen_bool(0.65) {
            self.respond(rng, &who, &survey, Some(campaign), out);
        }
    }

    /// Server-side events from the customer's backend: user_id and usually email.
    fn backend(&mut self, rng: &mut StdRng, ws: usize, out: &mut Session) {
        let Some(user) = self.free_user(rng, ws, false) else {
            return self.email_link(rng, ws, out);
        };
        let w = &mut self.workspaces[ws];
        out.hold(w, Some(user), None);
        let user = &w.users[user];
        let email = user.email.clone().filter(|_| rng.gen_bool(0.7));
        let who = Who {
            channel: "api",
            user: Some(user.number),
            email,
            anonymous: None,
        };
        let roll: f64 = rng.gen();
        if roll < 0.4 {
            let amount = i64::from(rng.gen_range(1..200u32)) * 500;
            out.push("track", &who, |f| {
                let mut p = Fields::new();
                p.int("amount_cents", amount).str("currency", "usd");
                f.str("event", "Invoice Paid").object("properties", &p);
            });
        } else if roll < 0.6 {
            let plan = pick(rng, &PLANS);
            out.push("track", &who, |f| {
                let mut p = Fields::new();
                p.str("plan", plan);
                f.str("event", "Subscription Renewed")
                    .object("properties", &p);
            });
        } else {
            self.traits(rng, ws, &who, out);
        }
    }

    // --- building blocks ------------------------------------------------

    /// 1-4 anonymous events: page views and surveys seen or dismissed.
    fn browse(&mut self, rng: &mut StdRng, who: &Who, out: &mut Session) {
        for _ in 0..rng.gen_range(1..=4u32) {
            if rng.gen_bool(0.65) {
                let page = pick(rng, &PAGES);
                out.push("track", who, |f| {
                    let mut p = Fields::new();
                    p.str("path", page);
                    f.str("event", "Page Viewed").object("properties", &p);
                });
            } else {
                self.survey(rng, who, out);
            }
        }
    }

    /// The account is created on `device`.
    fn sign_up(&mut self, rng: &mut StdRng, ws: usize, device: usize, out: &mut Session) -> usize {
        let w = &mut self.workspaces[ws];
        let number = w.users.len() + 1;
        let email = if number == 1 {
            // Every workspace has `u1@example.com`, for trying `idfold profile`.
            Some("u1@example.com".to_owned())
        } else if !w.readers.is_empty() && rng.gen_bool(0.15) {
            // A newsletter reader creates an account.
            let slot = index(rng, w.readers.len());
            Some(w.readers.swap_remove(slot))
        } else {
            rng.gen_bool(0.6).then(|| format!("u{number}@example.com"))
        };
        let user = w.new_user(device, email.clone());
        out.hold(w, Some(user), None);
        w.sign_in(user, device);
        let d = &w.devices[device];
        let who = Who {
            channel: if d.mobile { "mobile" } else { "web" },
            user: Some(w.users[user].number),
            email: email.filter(|_| rng.gen_bool(0.7)),
            anonymous: Some(d.id.clone()),
        };
        let plan = if rng.gen_bool(0.7) { "free" } else { "pro" };
        let seats = i64::from(rng.gen_range(1..=10u32));
        let number = w.users[user].number;
        out.push("identify", &who, |f| {
            let mut t = Fields::new();
            t.fmt("name", format_args!("User {number}"))
                .str("plan", plan)
                .int("seats", seats);
            f.object("traits", &t);
        });
        out.push("track", &Who { email: None, ..who }, |f| {
            f.str("event", "Signed Up");
        });
        user
    }

    /// `user` signs in on `device` (which may be someone else's).
    fn sign_in(
        &mut self,
        rng: &mut StdRng,
        ws: usize,
        user: usize,
        device: usize,
        out: &mut Session,
    ) {
        let w = &mut self.workspaces[ws];
        w.sign_in(user, device);
        let d = &w.devices[device];
        let u = &w.users[user];
        let who = Who {
            channel: if d.mobile { "mobile" } else { "web" },
            user: Some(u.number),
            email: u.email.clone().filter(|_| rng.gen_bool(0.3)),
            anonymous: Some(d.id.clone()),
        };
        out.push("identify", &who, |_| {});
    }

    /// 1-5 events by a signed-in user on `device`.
    fn activity(
        &mut self,
        rng: &mut StdRng,
        ws: usize,
        user: usize,
        device: usize,
        out: &mut Session,
    ) {
        let w = &self.workspaces[ws];
        let d = &w.devices[device];
        let u = &w.users[user];
        let who = Who {
            channel: if d.mobile { "mobile" } else { "web" },
            user: Some(u.number),
            email: None,
            anonymous: Some(d.id.clone()),
        };
        let email = u.email.clone();
        let mobile = d.mobile;
        for _ in 0..rng.gen_range(1..=5u32) {
            let roll: f64 = rng.gen();
            if roll < 0.5 {
                let who = Who {
                    email: email.clone().filter(|_| rng.gen_bool(0.1)),
                    ..who.clone()
                };
                self.track(rng, mobile, &who, out);
            } else if roll < 0.6 {
                let who = Who {
                    email: email.clone().filter(|_| rng.gen_bool(0.3)),
                    ..who.clone()
                };
                self.traits(rng, ws, &who, out);
            } else if roll < 0.65 {
                let plan = pick(rng, &PLANS);
                out.push("identify", &who, |f| {
                    let mut t = Fields::new();
                    t.str("plan", plan);
                    f.object("traits", &t);
                });
            } else {
                self.survey(rng, &who, out);
            }
        }
    }

    fn track(&mut self, rng: &mut StdRng, mobile: bool, who: &Who, out: &mut Session) {
        let roll: f64 = rng.gen();
        let mut p = Fields::new();
        let event = if mobile {
            if roll < 0.3 {
                "App Opened"
            } else if roll < 0.7 {
                p.str("screen", pick(rng, &SCREENS));
                "Screen Viewed"
            } else {
                p.str("feature", pick(rng, &FEATURES));
                "Feature Used"
            }
        } else if roll < 0.45 {
            p.str("path", pick(rng, &PAGES));
            "Page Viewed"
        } else if roll < 0.75 {
            p.str("feature", pick(rng, &FEATURES));
            "Feature Used"
        } else if roll < 0.85 {
            p.str("format", if rng.gen_bool(0.5) { "csv" } else { "pdf" });
            "Report Exported"
        } else if roll < 0.93 {
            p.str("plan", pick(rng, &PLANS))
                .int("amount_cents", i64::from(rng.gen_range(10..500u32)) * 100);
            "Checkout"
        } else {
            p.int("invitees", i64::from(rng.gen_range(1..=5u32)));
            "Invite Sent"
        };
        out.push("track", who, |f| {
            f.str("event", event);
            if !p.as_str().is_empty() {
                f.object("properties", &p);
            }
        });
    }

    fn traits(&mut self, rng: &mut StdRng, ws: usize, who: &Who, out: &mut Session) {
        let plan = pick(rng, &PLANS);
        let seats = i64::from(rng.gen_range(1..=50u32));
        let set_once = rng.gen_bool(0.4);
        let unset = rng.gen_bool(0.15);
        out.push("traits", who, |f| {
            let mut t = Fields::new();
            t.str("plan", plan).int("seats", seats);
            f.object("traits", &t);
            if set_once {
                let mut s = Fields::new();
                s.fmt("company", format_args!("Company {ws}"))
                    .str("first_plan", "free");
                f.object("set_once", &s);
            }
            if unset {
                f.strings("unset", &["trial_ends_at"]);
            }
        });
    }

    /// A survey is shown; it may be dismissed or answered.
    fn survey(&mut self, rng: &mut StdRng, who: &Who, out: &mut Session) {
        let survey = format!("s-{}", rng.gen_range(0..SURVEYS));
        out.push("survey", who, |f| {
            f.str("survey_id", &survey).str("action", "shown");
        });
        let roll: f64 = rng.gen();
        if roll < 0.3 {
            out.push("survey", who, |f| {
                f.str("survey_id", &survey).str("action", "dismissed");
            });
        } else if roll < 0.6 {
            self.respond(rng, who, &survey, None, out);
        }
    }

    /// An answer: in one step, or saved in two steps under one response_id
    /// (the score first, the comment later).
    fn respond(
        &mut self,
        rng: &mut StdRng,
        who: &Who,
        survey: &str,
        campaign: Option<&str>,
        out: &mut Session,
    ) {
        let nps = i64::from(rng.gen_range(0..=10u32));
        let comment = pick(rng, &COMMENTS);
        let context = |f: &mut Fields| {
            if let Some(campaign) = campaign {
                let mut c = Fields::new();
                c.str("campaign", campaign);
                f.object("context", &c);
            }
        };
        let roll: f64 = rng.gen();
        if roll < 0.1 && who.user.is_none() && who.email.is_none() {
            // Anonymous one-step answer without a response_id.
            out.push("survey", who, |f| {
                let mut a = Fields::new();
                a.int("nps", nps);
                f.str("survey_id", survey)
                    .str("action", "responded")
                    .object("answers", &a);
            });
            return;
        }
        let response = self.response_id();
        if roll < 0.35 {
            for step in 0..2 {
                out.push("survey", who, |f| {
                    let mut a = Fields::new();
                    if step == 0 {
                        a.int("nps", nps);
                    } else {
                        a.str("comment", comment);
                    }
                    f.str("survey_id", survey)
                        .str("action", "responded")
                        .str("response_id", &response);
                    f.object("answers", &a);
                    context(f);
                });
            }
        } else {
            let with_comment = rng.gen_bool(0.4);
            out.push("survey", who, |f| {
                let mut a = Fields::new();
                if with_comment {
                    a.str("comment", comment);
                }
                a.int("nps", nps);
                f.str("survey_id", survey)
                    .str("action", "responded")
                    .str("response_id", &response);
                f.object("answers", &a);
                context(f);
            });
        }
    }
}
