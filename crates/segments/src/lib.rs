//! Targeting segments of identified users. A segment is a JSON filter:
//! `all` / `any` / `not` over conditions on traits, track events, survey
//! interactions and first / last seen. `parse` turns JSON into a
//! [`Filter`] or a [`FilterError`] that points at the bad part (a JSON
//! pointer); `Filter::matches` evaluates it on a profile (the projector's
//! typed `ProfileView`) at a given time. Anonymous profiles never match. Pure: the time is the caller's.

mod filter;
mod matches;
mod parse;

pub use filter::{Filter, SeenField, TimeTest, TraitTest, When};
pub use parse::{parse, FilterError, MAX_CONDITIONS, MAX_DAYS, MAX_DEPTH, MAX_IN_VALUES};
