//! Crash safety: `idfold run` killed with SIGKILL at random moments must,
//! once restarted, produce exactly the export of a clean fold. State and log
//! position are committed in one atomic batch, so nothing is lost and
//! nothing is counted twice.

mod harness;

use std::time::Duration;

use harness::{generated_workload, Idfold};
use rand::{Rng, SeedableRng};

#[test]
fn sigkill_at_random_moments_changes_nothing() {
    let (_tmp, workload) = generated_workload(40_000, 7);

    let clean = Idfold::new();
    clean.ingest(&workload);
    let expected = clean.fold();
    assert!(
        expected.lines().count() > 1_000,
        "the workload folds into many profiles"
    );

    let crashed = Idfold::new();
    crashed.ingest(&workload);
    let seed: u64 = rand::random();
    eprintln!("crash test seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut kills_mid_fold = 0;
    for _ in 0..6 {
        // Small batches: many commits, so kills land between and inside
        // them; the smallest budget, so the fold evicts and reloads too.
        let mut child = crashed.spawn("run", &["--batch-size", "700", "--memory-budget", "16MiB"]);
        std::thread::sleep(Duration::from_millis(rng.gen_range(100..900)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        // Mid-fold: some batches committed, the log not yet caught up.
        let probe = crashed.run("mau", &["--workspace", "ws-0"]);
        let behind = String::from_utf8_lossy(&probe.stderr).contains("not folded yet");
        if behind && !crashed.export().is_empty() {
            kills_mid_fold += 1;
        }
    }
    assert!(
        kills_mid_fold > 0,
        "at least one run was killed before it caught up"
    );
    assert_eq!(crashed.fold(), expected, "seed {seed}");
}

#[test]
fn sigterm_stops_the_follower_cleanly_with_its_work_kept() {
    let (_tmp, workload) = generated_workload(5_000, 11);
    let idfold = Idfold::new();
    idfold.ingest(&workload);
    let mut child = idfold.spawn("run", &["--batch-size", "500"]);
    std::thread::sleep(Duration::from_millis(1_500));
    let pid = child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = child.wait().expect("reaped");
    assert!(exit.success(), "SIGTERM exits 0, got {exit}");
    let after_term = idfold.export();
    assert!(
        !after_term.is_empty(),
        "the follower committed its work before exiting"
    );
    let clean = Idfold::new();
    clean.ingest(&workload);
    assert_eq!(idfold.fold(), clean.fold());
}
