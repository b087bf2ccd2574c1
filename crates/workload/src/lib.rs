//! A deterministic generator of realistic idfold event workloads (NDJSON in
//! the canonical event form) for benchmarks, crash tests and demos: the same
//! [`WorkloadSpec`] always gives the same lines, byte for byte.

mod civil_time;
mod generator;
mod json;
mod population;
mod sessions;
mod spec;

pub use generator::{generate, write_ndjson};
pub use spec::WorkloadSpec;

#[cfg(test)]
mod tests;
