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

#[test]
fn typed_reads_give_the_stored_profile_and_follow_a_device_to_its_user() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = DataDir::open(tmp.path(), Duration::ZERO)?;
    let line = |mid: &str, ids: &str| {
        RawInput {
        bytes: format!(
            r#"{{"type":"track","message_id":"{mid}","workspace_id":"w","timestamp":"2026-01-01T00:00:00Z",{ids},"event":"Open"}}"#
        )
        .into_bytes(),
        ..RawInput::default()
    }
    };
    let log = EmbeddedLog::open(&dir)?;
    let dead = DeadLetterStore::open(&dir)?;
    Publisher::new(&log, &dead, "file").publish(
        "test",
        &[
            line("m1", r#""anonymous_id":"d""#),
            line("m2", r#""anonymous_id":"d","user_id":"u""#),
        ],
    )?;
    let mut projector = Projector::open(&dir, FoldOptions::default())?;
    projector.fold_until_idle(&log, |_| {})?;
    let store = projector.store();

    let user = Identifier::user("u");
    let (target, view) = store
        .lookup_view("w", &Identifier::anonymous("d"))?
        .expect("the device resolves");
    assert_eq!(target, user);
    assert_eq!(view.id, "user:u");
    assert_eq!(view.anonymous_ids, vec!["d".to_owned()]);
    assert_eq!(view.event_counts.track, 2, "the device's event moved over");
    assert_eq!(store.profile_view("w", &user)?.as_ref(), Some(&view));
    let stored = store.profile("w", &user)?.expect("stored");
    assert_eq!(serde_json::to_value(&view)?, stored);
    let all: Vec<_> = store.profile_views(Some("w")).collect::<Result<_, _>>()?;
    assert_eq!(all, vec![view]);
    assert!(store
        .lookup_view("w", &Identifier::anonymous("x"))?
        .is_none());
    Ok(())
}
