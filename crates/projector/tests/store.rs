//! The projector on real sled: cached workspaces stay correct when other
//! processes rebuild or fold the same store in between.

use std::time::Duration;

use idfold_events::Identifier;
use idfold_log::{DataDir, DeadLetterStore, EmbeddedLog};
use idfold_producer::{Publisher, RawInput};
use idfold_projector::{FoldOptions, Projector, WorkspaceCache};

fn event(mid: &str, day: u32, user: &str) -> RawInput {
    let line = format!(
        r#"{{"type":"track","message_id":"{mid}","workspace_id":"w","timestamp":"2026-01-{day:02}T00:00:00Z","user_id":"{user}","event":"Open"}}"#
    );
    RawInput {
        bytes: line.into_bytes(),
        ..RawInput::default()
    }
}

fn export(dir: &DataDir) -> String {
    let projector = Projector::open(dir, FoldOptions::default()).expect("opens");
    let mut out = Vec::new();
    projector.store().export(None, &mut out).expect("exports");
    String::from_utf8(out).expect("utf8")
}

#[test]
fn a_cache_is_dropped_when_another_fold_moved_the_store_on() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let options = FoldOptions {
        batch_size: 2,
        ..FoldOptions::default()
    };
    let publish = |dir: &DataDir, inputs: Vec<RawInput>| -> anyhow::Result<()> {
        let log = EmbeddedLog::open(dir)?;
        let dead = DeadLetterStore::open(dir)?;
        Publisher::new(&log, &dead, "file").publish("test", &inputs)?;
        Ok(())
    };

    // A follower folds, keeps its cache and lets go of the directory.
    let dir = DataDir::open(tmp.path(), Duration::ZERO)?;
    publish(&dir, vec![event("m1", 1, "u"), event("m2", 2, "u")])?;
    let mut follower = Projector::open(&dir, options)?;
    follower.fold_until_idle(&EmbeddedLog::open(&dir)?, |_| {})?;
    let cache: WorkspaceCache = follower.into_cache();
    drop(dir);

    // Meanwhile another process ingests and folds.
    let dir = DataDir::open(tmp.path(), Duration::ZERO)?;
    publish(&dir, vec![event("m3", 3, "u")])?;
    Projector::open(&dir, options)?.fold_until_idle(&EmbeddedLog::open(&dir)?, |_| {})?;
    drop(dir);

    // The follower comes back: its cache misses m3, so it must not be used.
    let dir = DataDir::open(tmp.path(), Duration::ZERO)?;
    publish(&dir, vec![event("m4", 4, "u")])?;
    let mut follower = Projector::with_cache(&dir, options, cache)?;
    follower.fold_until_idle(&EmbeddedLog::open(&dir)?, |_| {})?;
    let profile = follower
        .store()
        .profile("w", &Identifier::user("u"))?
        .expect("a profile");
    assert_eq!(
        profile["event_counts"]["track"],
        serde_json::json!(4),
        "all four events, none lost to a stale cache"
    );
    let incremental = export(&dir);
    drop(follower);

    Projector::open(&dir, options)?.rebuild(&EmbeddedLog::open(&dir)?, |_| {})?;
    assert_eq!(export(&dir), incremental);
    Ok(())
}
