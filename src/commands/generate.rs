//! `idfold generate`: a realistic workload as NDJSON, for trying idfold out.

use std::io::Write;
use std::process::ExitCode;

use idfold_workload::{write_ndjson, WorkloadSpec};

pub fn run(events: usize, workspaces: usize, seed: u64) -> anyhow::Result<ExitCode> {
    let spec = WorkloadSpec {
        events,
        workspaces: workspaces.max(1),
        seed,
        ..WorkloadSpec::default()
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    write_ndjson(&spec, &mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
