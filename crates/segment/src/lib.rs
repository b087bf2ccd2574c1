//! Segment's tracking API, spoken exactly: translates a Segment message
//! (identify, track, page, screen, group, alias) into idfold's canonical
//! event and validates it by the core rules, so a rejection names the
//! Segment field (`userId`, not `user_id`). Pure: the workspace (from the
//! write key) and the receive time come from the caller.

mod call;
mod message;
mod message_id;
mod translate;

pub use call::SegmentCall;
pub use message::{parse_message, parse_message_slice, ID_FIELDS};
pub use message_id::generated_message_id;
pub use translate::{translate, Envelope, Translated};
