//! A deterministic generator of realistic idfold workloads (skewed
//! workspaces, anonymous browsing, sign-ins, shared devices, email links,
//! multi-step survey responses, late events and exact re-deliveries) for
//! benchmarks, crash tests and trying idfold out.

mod civil_time;
mod generator;

pub use generator::{generate, write_ndjson, WorkloadSpec};
