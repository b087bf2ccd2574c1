//! Identity stitching as pure rules: which links an event asserts, each
//! email's and device's link timeline ordered by (event time, message_id),
//! and `resolve_identity`, which says whose an identifier is at a given time.
//! Users are terminal: two identified users are never merged.

mod graph;
mod timeline;

pub use graph::{asserted_links, follow, IdentityGraph, MAX_HOPS};
pub use timeline::{Link, LinkInsert, LinkTimeline};
