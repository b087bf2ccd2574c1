//! The projector: folds accepted events into per-profile state and two-mode
//! MAU. `workspace`, `profile` and `mau` are pure rules (events and state in,
//! changes out); `store` keeps them in sled and `fold` drives them from any
//! `EventLog`, writing state and log position in one atomic batch.

mod erasure;
mod error;
mod fold;
mod mau;
mod memory;
mod profile;
mod record;
mod state;
mod store;
mod view;
mod workspace;

pub use erasure::{ErasureRecord, RetainedMau};
pub use error::ProjectorError;
pub use fold::{
    BatchReport, ChangeSink, FoldOptions, Projector, StageTimings, WorkspaceCache,
    DEFAULT_MEMORY_BUDGET,
};
pub use mau::{Activity, MauRow, MonthCounts};
pub use memory::MemoryFold;
pub use profile::ProfileAggregate;
pub use record::{FoldRecord, SurveyStep, TraitChanges};
pub use state::{MessageHash, NodeRecord, TargetRecord};
pub use store::StateStore;
pub use view::{EventCounts, ProfileKind, ProfileView, ResponseView, SurveyStats, TrackStats};
pub use workspace::{
    render_target, render_view, Applied, StateReader, WorkspaceChanges, WorkspaceState,
};
