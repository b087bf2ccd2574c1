//! The read side over HTTP: a workspace's MAU by month or range, its
//! profiles looked up by any identifier, survey responses, and targeting
//! segments, read straight from the fold's sled state while it keeps
//! folding; erasure, which goes through the log like events do; and the
//! dashboard at `/`, plain HTML rendered from the same store, signed in
//! through server-side sessions (`session`). Every route is per workspace,
//! behind a read token of that workspace; scans are bounded per workspace.
//! `headers` sets what every answer of the server carries (nosniff,
//! no-store, no framing).

mod dashboard;
mod erasure;
mod error;
mod forward;
mod headers;
mod mau;
mod profiles;
mod responses;
mod routes;
mod segments;
mod session;

pub use dashboard::DashboardSettings;
pub use erasure::{erasure_request, outcome_json, ErasureLog};
pub use error::ReadError;
pub use forward::ClusterView;
pub use headers::security_headers;
pub use profiles::answer as profile_answer;
pub use responses::{page, responses_of, time_param, to_csv, Cursor, ResponseFilter, ResponseRow};
pub use routes::{router, ReadState};
pub use segments::SegmentStore;
