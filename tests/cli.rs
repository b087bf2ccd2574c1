//! The CLI contract, command by command, against the real binary and real
//! sled on disk.

mod harness;

use harness::{fixture, Idfold};
use serde_json::{json, Value};

fn sample() -> Idfold {
    let idfold = Idfold::new();
    let counts: Value =
        serde_json::from_str(&idfold.ingest(&fixture("sample.ndjson"))).expect("JSON counts");
    assert_eq!(counts, json!({"accepted": 19, "rejected": 3}));
    idfold.ok("run", &["--until-idle"]);
    idfold
}

#[test]
fn ingest_reports_each_rejection_by_line_with_its_code() {
    let idfold = Idfold::new();
    let out = idfold.run(
        "ingest",
        &["--json", fixture("rejects.ndjson").to_str().expect("path")],
    );
    assert!(
        out.status.success(),
        "without --strict, rejections still exit 0"
    );
    let counts: Value = serde_json::from_slice(&out.stdout).expect("JSON counts");
    assert_eq!(counts, json!({"accepted": 1, "rejected": 14}));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = [
        (1, "invalid_json"),
        (2, "invalid_json"),
        (3, "missing_field"),
        (4, "unknown_type"),
        (5, "missing_field"),
        (6, "invalid_field"),
        (7, "invalid_field"),
        (8, "no_identifier"),
        (9, "identified_user_required"),
        (10, "invalid_field"),
        (11, "invalid_field"),
        (12, "invalid_field"),
        (13, "invalid_field"),
        (14, "identified_user_required"),
    ];
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("line ")).collect();
    assert_eq!(lines.len(), expected.len(), "{stderr}");
    for ((n, code), line) in expected.iter().zip(&lines) {
        assert!(line.starts_with(&format!("line {n}: {code}: ")), "{line}");
    }
    assert!(
        lines[4].contains("message_id"),
        "the message names the field: {}",
        lines[4]
    );
    assert!(lines[6].contains("timestamp"), "{}", lines[6]);

    let strict = idfold.run(
        "ingest",
        &[
            "--strict",
            fixture("rejects.ndjson").to_str().expect("path"),
        ],
    );
    assert_eq!(strict.status.code(), Some(1));
}

#[test]
fn oversized_binary_and_unknown_avro_inputs_are_rejected_not_fatal() {
    let idfold = Idfold::new();
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("odd.ndjson");
    let mut bytes = Vec::new();
    // An event over 32 KiB.
    let big = "x".repeat(40 * 1024);
    bytes.extend_from_slice(
        format!(r#"{{"type":"track","message_id":"b-1","workspace_id":"w","timestamp":"2026-03-01T00:00:00Z","anonymous_id":"d","event":"{big}"}}"#).as_bytes(),
    );
    bytes.push(b'\n');
    // Avro single-object header with a fingerprint no schema has.
    bytes.extend_from_slice(&[0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0x02, 0x61]);
    bytes.push(b'\n');
    // A line far over any limit, and bytes that are not UTF-8.
    bytes.extend(std::iter::repeat_n(b'{', 3 * 1024 * 1024));
    bytes.push(b'\n');
    bytes.extend_from_slice(&[0xFF, 0xFE, 0x00, b'\n']);
    std::fs::write(&path, &bytes).expect("written");
    let out = idfold.run("ingest", &["--json", path.to_str().expect("path")]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 1: too_large: "), "{stderr}");
    assert!(stderr.contains("line 2: unknown_schema: "), "{stderr}");
    assert!(stderr.contains("line 3: too_large: "), "{stderr}");
    assert!(stderr.contains("line 4: invalid_json: "), "{stderr}");
    let dlq = idfold.json("dlq", &["--json"]);
    let items = dlq.as_array().expect("array");
    assert_eq!(
        items.len(),
        4,
        "accepted + rejected = received: all four are kept"
    );
    assert_eq!(items[2]["truncated"], json!(true));
    assert!(
        items[3].get("raw_base64").is_some(),
        "non-UTF-8 bytes are kept as base64"
    );
}

#[test]
fn mau_counts_identified_and_anonymous_visitors_by_month() {
    let idfold = sample();
    let jan = idfold.json(
        "mau",
        &["--workspace", "acme", "--month", "2026-01", "--json"],
    );
    assert_eq!(
        jan,
        json!({"workspace_id": "acme", "month": "2026-01", "identified": 1, "anonymous": 0, "total": 1})
    );
    let all = idfold.json("mau", &["--workspace", "acme", "--json"]);
    assert_eq!(
        all,
        json!([
            {"workspace_id": "acme", "month": "2026-01", "identified": 1, "anonymous": 0, "total": 1},
            {"workspace_id": "acme", "month": "2026-02", "identified": 4, "anonymous": 1, "total": 5},
        ])
    );
    // The visitor who responded on Jan 31 and signed in on Feb 1 stays anonymous in January.
    let globex = idfold.json("mau", &["--workspace", "globex", "--json"]);
    assert_eq!(
        globex[0],
        json!({"workspace_id": "globex", "month": "2026-01", "identified": 1, "anonymous": 1, "total": 2})
    );
    assert_eq!(globex[1]["identified"], json!(1));
    let empty = idfold.json(
        "mau",
        &["--workspace", "acme", "--month", "2025-12", "--json"],
    );
    assert_eq!(empty["total"], json!(0));
    let table = idfold.ok("mau", &["--workspace", "acme"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("acme") && l.contains("2026-02") && l.trim_end().ends_with('5')),
        "{table}"
    );
    let bad = idfold.run("mau", &["--workspace", "acme", "--month", "2026-13"]);
    assert_eq!(bad.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("YYYY-MM"));
}

#[test]
fn profile_lookups_follow_links_to_the_user() {
    let idfold = sample();
    let alice = idfold.json(
        "profile",
        &["--workspace", "acme", "--email", " ALICE@acme.io", "--json"],
    );
    assert_eq!(alice["id"], json!("user:alice"));
    assert_eq!(alice["resolved_from"], json!("email:alice@acme.io"));
    assert_eq!(alice["kind"], json!("identified"));
    assert_eq!(alice["emails"], json!(["alice@acme.io"]));
    assert_eq!(alice["anonymous_ids"], json!(["device-1"]));
    assert_eq!(
        alice["traits"],
        json!({"name": "Alice", "plan": "pro", "signup_source": "pricing-page"})
    );
    assert_eq!(
        alice["event_counts"],
        json!({"identify": 1, "traits": 1, "track": 1, "survey": 5})
    );
    assert_eq!(
        alice["first_seen"],
        json!("2026-01-02T09:00:00Z"),
        "the late pre-sign-in event is adopted"
    );
    assert_eq!(
        alice["surveys"]["nps-q1"],
        json!({"shown": 1, "dismissed": 1, "responded": 1,
               "last_shown": "2026-01-05T09:01:00Z", "last_dismissed": "2026-01-06T10:00:00Z",
               "last_responded": "2026-02-02T12:00:30Z"})
    );
    assert_eq!(
        alice["responses"][0]["answers"],
        json!({"comment": "Great support", "nps": 9})
    );
    assert_eq!(
        alice["responses"][0]["timestamp"],
        json!("2026-02-02T12:00:30Z")
    );
    assert_eq!(alice["track"]["Page Viewed"]["count"], json!(1));

    // A shared device belongs to whoever signed in last; its history splits by time.
    let carol = idfold.json(
        "profile",
        &[
            "--workspace",
            "acme",
            "--anonymous-id",
            "device-4",
            "--json",
        ],
    );
    assert_eq!(carol["id"], json!("user:carol"));
    let bob = idfold.json(
        "profile",
        &["--workspace", "acme", "--user-id", "bob", "--json"],
    );
    assert_eq!(
        bob["track"]["Report Exported"]["last"],
        json!("2026-02-15T09:00:00Z")
    );
    assert_eq!(
        bob["anonymous_ids"],
        json!([]),
        "device-4 resolves to carol now"
    );

    let dave = idfold.json(
        "profile",
        &["--workspace", "acme", "--email", "dave@acme.io", "--json"],
    );
    assert_eq!(
        (dave["id"].clone(), dave["user_id"].clone()),
        (json!("email:dave@acme.io"), Value::Null)
    );
    assert_eq!(
        dave["responses"][0]["context"],
        json!({"campaign": "feb-newsletter"})
    );

    let device3 = idfold.json(
        "profile",
        &[
            "--workspace",
            "acme",
            "--anonymous-id",
            "device-3",
            "--json",
        ],
    );
    assert_eq!(
        (device3["kind"].clone(), device3["traits"].clone()),
        (json!("anonymous"), json!({}))
    );

    let missing = idfold.run("profile", &["--workspace", "acme", "--user-id", "nobody"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no profile for user:nobody"));
}

#[test]
fn export_is_byte_identical_across_redelivery_and_rebuild() {
    let idfold = sample();
    let first = idfold.export();
    assert!(first
        .lines()
        .all(|l| serde_json::from_str::<Value>(l).is_ok()));
    let records: Vec<Value> = first
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["record"].as_str().unwrap_or(""))
        .collect();
    let first_mau = kinds.iter().position(|k| *k == "mau").expect("MAU rows");
    assert!(
        kinds[..first_mau].iter().all(|k| *k == "profile")
            && kinds[first_mau..].iter().all(|k| *k == "mau")
    );

    // Every event delivered again: nothing changes.
    idfold.ingest(&fixture("sample.ndjson"));
    let run = idfold.run("run", &["--until-idle"]);
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("19 duplicates dropped"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(idfold.export(), first);

    idfold.ok("rebuild", &[]);
    assert_eq!(
        idfold.export(),
        first,
        "a rebuild equals the incremental fold"
    );

    let acme = idfold.ok("export", &["--workspace", "acme"]);
    assert!(acme.lines().all(|l| l.contains(r#""workspace_id":"acme""#)));
    assert!(acme.lines().count() < first.lines().count());
}

#[test]
fn dlq_lists_rejections_with_reasons_and_original_bytes() {
    let idfold = sample();
    let dlq = idfold.json("dlq", &["--json"]);
    let items = dlq.as_array().expect("array");
    let reasons: Vec<&str> = items
        .iter()
        .map(|i| i["reason"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        reasons,
        vec!["identified_user_required", "invalid_field", "invalid_json"]
    );
    assert_eq!(items[1]["field"], json!("user_id"));
    assert_eq!(items[1]["position"], json!(18));
    assert!(items[2]["raw"]
        .as_str()
        .unwrap_or("")
        .starts_with(r#"{"type":"track","message_id":"acme-018""#));
    let text = idfold.ok("dlq", &[]);
    assert_eq!(text.lines().count(), 3);
}

#[test]
fn events_ingested_while_run_follows_are_folded() {
    let idfold = Idfold::new();
    idfold.ingest(&fixture("rejects.ndjson"));
    let mut follower = idfold.spawn("run", &[]);
    // The follower lets go of the directory between batches and polls.
    idfold.ingest(&fixture("sample.ndjson"));
    let mut rows = serde_json::Value::Null;
    for _ in 0..100 {
        rows = idfold.json(
            "mau",
            &["--workspace", "acme", "--month", "2026-02", "--json"],
        );
        if rows["total"] == json!(5) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let follower_alive = follower.try_wait().expect("status").is_none();
    follower.kill().ok();
    follower.wait().ok();
    assert!(follower_alive, "the follower keeps running on an idle log");
    assert_eq!(
        rows["total"],
        json!(5),
        "the follower folded what was ingested while it ran"
    );
}

#[test]
fn read_commands_refuse_a_missing_directory() {
    let idfold = Idfold::new();
    let out = idfold.run("export", &[]);
    assert_eq!(out.status.code(), Some(3), "operational errors exit 3");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no idfold data in"));
}

#[test]
fn demo_runs_the_sample_end_to_end() {
    let out = std::process::Command::new(harness::BIN)
        .arg("demo")
        .output()
        .expect("demo runs");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ingested 19 events (3 rejected"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("acme") && l.contains("2026-02")),
        "{stdout}"
    );
    assert!(stdout.contains("\"id\": \"user:alice\""), "{stdout}");
}

#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    // An export far larger than a pipe's buffer, so idfold meets the closed pipe.
    let (_tmp, workload) = harness::generated_workload(5_000, 3);
    let idfold = Idfold::new();
    idfold.ingest(&workload);
    idfold.ok("run", &["--until-idle"]);
    let mut child = idfold
        .command("export", &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("export starts");
    // Close our end of the pipe before idfold writes much.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("export ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn the_config_file_sets_what_flags_and_the_environment_leave_unset_and_check_explains_it() {
    let idfold = Idfold::new();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("from-file");
    let config = dir.path().join("idfold.toml");
    std::fs::write(
        &config,
        format!(
            "data = {:?}\n[limits]\nbatch_size = 3\n[[workspaces]]\nid = \"acme\"\nwrite_keys = [\"wk_acme_secret_0123456789\"]\n",
            data.display().to_string()
        ),
    )
    .expect("written");
    let config = config.to_str().expect("UTF-8");
    let check = |file: &str| {
        std::process::Command::new(harness::BIN)
            .args(["config", "check", "--config", file])
            .output()
            .expect("idfold runs")
    };
    let checked = check(config);
    let out = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{out}");
    assert!(
        out.contains("IDFOLD_BATCH_SIZE=3") && !out.contains("wk_acme_secret"),
        "{out}"
    );

    // `data` comes from the file: `ingest` without --data writes there.
    let ingest = std::process::Command::new(harness::BIN)
        .args(["ingest", "--config", config])
        .arg(fixture("sample.ndjson"))
        .env_remove("IDFOLD_DATA")
        .output()
        .expect("idfold runs");
    assert!(
        ingest.status.success(),
        "{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    assert!(
        data.join("db").is_dir(),
        "the file's data directory was used"
    );
    // A flag wins over the file.
    idfold.ok(
        "ingest",
        &[
            "--config",
            config,
            fixture("sample.ndjson").to_str().expect("UTF-8"),
        ],
    );
    assert!(idfold.data().join("db").is_dir());

    std::fs::write(
        dir.path().join("bad.toml"),
        "listen = \"nowhere\"\n[limits]\nwrite_queue = 0\n[[workspaces]]\nid = \"acme\"\nwrite_keys = [\"short-secret\"]\n",
    )
    .expect("written");
    let bad = dir.path().join("bad.toml");
    let bad = bad.to_str().expect("UTF-8");
    let checked = check(bad);
    let err = String::from_utf8_lossy(&checked.stderr);
    assert_eq!(checked.status.code(), Some(2));
    for key in ["`listen`", "`limits.write_queue`", "`workspaces`"] {
        assert!(err.contains(key), "{key} in {err}");
    }
    assert!(!err.contains("short-secret"), "{err}");
    // Any command refuses the file, and points at `config check`.
    let refused = idfold.run("mau", &["--config", bad, "--workspace", "acme"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("idfold config check"));
}

#[test]
fn long_commands_show_progress_on_a_terminal_and_stay_quiet_in_pipes() {
    let (_dir, workload) = harness::generated_workload(30_000, 11);
    let idfold = Idfold::new();
    // In a pipe: the summary line only.
    let ingest = idfold.run("ingest", &[workload.to_str().expect("UTF-8")]);
    assert_eq!(
        String::from_utf8_lossy(&ingest.stderr),
        "accepted 30000, rejected 0\n"
    );
    // On a terminal (`script` runs it on a pseudo-terminal): a bar with
    // rate and ETA, cleared at the end.
    let on_terminal = |command: &str| {
        let line = format!(
            "{} {command} --data {}",
            harness::BIN,
            idfold.data().display()
        );
        let out = std::process::Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env_remove("CI")
            .output()
            .expect("script (util-linux) runs");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = on_terminal("rebuild");
    assert!(
        shown.contains("rebuilding [") && shown.contains("records (") && shown.contains("ETA"),
        "{shown}"
    );
    assert!(shown.contains("rebuilt from"), "{shown}");
}

#[test]
fn the_shipped_configuration_files_pass_config_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // The Kubernetes ConfigMap's file, as the pods get it.
    let manifest = std::fs::read_to_string(root.join("deploy/k8s/idfold.yaml")).expect("manifest");
    let embedded: String = manifest
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("idfold.toml: |"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    assert!(embedded.contains("[kafka]"), "{embedded}");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let from_manifest = dir.path().join("k8s.toml");
    std::fs::write(&from_manifest, embedded).expect("written");
    for file in [root.join("deploy/idfold.toml"), from_manifest] {
        let out = std::process::Command::new(harness::BIN)
            .args(["config", "check", "--config"])
            .arg(&file)
            .output()
            .expect("idfold runs");
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// An `idfold` command on `data` (any path), waited for: (exit code, stderr).
fn on_data(sub: &str, data: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(harness::BIN)
        .arg(sub)
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("IDFOLD_DATA")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("idfold runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn folding_and_reading_refuse_a_directory_with_no_data_and_create_nothing() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let missing = dir.path().join("no-such-dir");
    for (sub, args) in [
        ("run", &["--until-idle"][..]),
        // The follower refuses at once rather than polling for ever.
        ("run", &[][..]),
        ("rebuild", &[][..]),
        ("mau", &["--workspace", "acme"][..]),
        ("erase", &["--workspace", "acme", "--user-id", "u1"][..]),
    ] {
        let (code, stderr) = on_data(sub, &missing, args);
        assert_eq!(code, Some(3), "{sub} {args:?}: {stderr}");
        assert!(stderr.contains("no idfold data in"), "{sub}: {stderr}");
        assert!(!stderr.contains("folded 0"), "{sub}: {stderr}");
        assert!(!missing.exists(), "{sub} {args:?} created the directory");
    }
    // Writers create it.
    let (code, stderr) = on_data("ingest", &missing, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(missing.join("db").is_dir());
    let (code, stderr) = on_data("run", &missing, &["--until-idle"]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn a_file_given_as_data_directory_is_named_as_a_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, "{}\n").expect("written");
    for (sub, args) in [
        ("ingest", &[][..]),
        ("run", &["--until-idle"][..]),
        ("mau", &["--workspace", "acme"][..]),
    ] {
        let (code, stderr) = on_data(sub, &file, args);
        assert_eq!(code, Some(3), "{sub}: {stderr}");
        assert!(
            stderr.contains("is a file, not a directory") && !stderr.contains("os error"),
            "{sub}: {stderr}"
        );
    }
    assert_eq!(std::fs::read(&file).expect("kept"), b"{}\n");
}

#[test]
fn an_os_error_is_printed_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").expect("written");
    // A directory under a file cannot be created (ENOTDIR).
    let (code, stderr) = on_data("ingest", &file.join("data"), &[]);
    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(
        stderr.matches("os error").count(),
        1,
        "the cause once: {stderr}"
    );
    assert!(stderr.contains("cannot open data directory"), "{stderr}");
}

#[test]
fn a_directory_of_other_files_is_not_an_idfold_data_directory() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    let beside = dir.path().join("beside");
    std::fs::create_dir(&beside).expect("created");
    std::fs::write(beside.join("notes.bin"), &garbage).expect("written");
    let (code, stderr) = on_data("mau", &beside, &["--workspace", "acme"]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("not an idfold data directory"), "{stderr}");

    // Files in place of sled's: refused by readers and writers alike, and
    // left as they were.
    let inside = dir.path().join("inside");
    std::fs::create_dir_all(inside.join("db")).expect("created");
    for name in ["conf", "blobs", "snap.0000000000001000"] {
        std::fs::write(inside.join("db").join(name), &garbage).expect("written");
    }
    for (sub, args) in [
        ("mau", &["--workspace", "acme"][..]),
        ("run", &["--until-idle"][..]),
        ("ingest", &[][..]),
    ] {
        let (code, stderr) = on_data(sub, &inside, args);
        assert_eq!(code, Some(3), "{sub}: {stderr}");
        assert!(
            stderr.contains("not an idfold data directory") && !stderr.contains("sled"),
            "{sub}: {stderr}"
        );
    }
    assert_eq!(
        std::fs::read(inside.join("db/conf")).expect("kept"),
        garbage
    );
}

#[test]
fn a_workspace_flag_that_is_not_a_workspace_id_is_a_usage_error() {
    let idfold = sample();
    for sub in ["mau", "export", "responses"] {
        let out = idfold.run(sub, &["--workspace", "../../etc"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{sub}: {stderr}");
        assert!(
            stderr.contains("--workspace") && stderr.contains("not a workspace id"),
            "{sub}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{sub} printed no table");
    }
    let out = idfold.run("profile", &["--workspace", "", "--user-id", "u1"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn erasing_no_such_profile_exits_2() {
    let idfold = sample();
    let out = idfold.run("erase", &["--workspace", "acme", "--user-id", "nobody"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no profile for"));
}

#[test]
fn config_check_reports_every_problem_of_a_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("idfold.toml");
    std::fs::write(
        &file,
        "listen = 8088\nlisen = \"x\"\nmetrics_addr = \"nowhere\"\n[limits]\nbatch_size = \"many\"\nwrite_queue = 0\n[kafka]\nbootstrap = \"k:9092\"\npartitions = \"six\"\n[[workspaces]]\nid = \"acme\"\nwrite_keys = \"wk_acme_secret_0123456789\"\n",
    )
    .expect("written");
    let out = std::process::Command::new(harness::BIN)
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .expect("idfold runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for key in [
        "`listen`",
        "`lisen`",
        "`metrics_addr`",
        "`limits.batch_size`",
        "`limits.write_queue`",
        "`kafka.partitions`",
        "`workspaces[0].write_keys`",
    ] {
        assert!(stderr.contains(key), "{key} in {stderr}");
    }
    assert!(stderr.contains("7 problem(s)"), "{stderr}");
    assert!(!stderr.contains("wk_acme_secret"), "{stderr}");
}

#[test]
fn log_lines_carry_colour_on_a_terminal_only() {
    let idfold = sample();
    // A one-shot command that logs at info: rebuild serving /metrics.
    let piped = idfold
        .command("rebuild", &["--metrics-addr", "127.0.0.1:0"])
        .env("IDFOLD_LOG", "info")
        .output()
        .expect("idfold runs");
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(
        piped.status.success() && stderr.contains("INFO") && stderr.contains("serving /metrics"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("\x1b["),
        "no escape codes in a pipe: {stderr:?}"
    );
    // On a pseudo-terminal (`script`), the level is coloured.
    let line = format!(
        "{} rebuild --data {} --metrics-addr 127.0.0.1:0",
        harness::BIN,
        idfold.data().display()
    );
    let on_terminal = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("IDFOLD_LOG", "info")
        .output()
        .expect("script (util-linux) runs");
    let shown = String::from_utf8_lossy(&on_terminal.stdout);
    assert!(shown.contains("\x1b[32m INFO"), "{shown:?}");
}

/// The fold engine may change; its answers may not. The fixture is the
/// export the v1 engine wrote for a generated workload (late links, shared
/// devices, re-deliveries) with an erasure in the middle; see its README.
#[test]
fn export_matches_the_v1_engine_byte_for_byte() {
    let idfold = Idfold::new();
    idfold.ingest(&fixture("fold_v1/events-before-erasure.ndjson"));
    idfold.ok("run", &["--until-idle"]);
    idfold.ok("erase", &["--workspace", "ws-1", "--user-id", "user-2"]);
    idfold.ingest(&fixture("fold_v1/events-after-erasure.ndjson"));
    idfold.ok("run", &["--until-idle"]);
    assert_v1_export(&idfold, "after the fold");
    idfold.ok("rebuild", &[]);
    assert_v1_export(&idfold, "after a rebuild");
}

/// The export is the v1 engine's, byte for byte.
fn assert_v1_export(idfold: &Idfold, when: &str) {
    let expected = std::fs::read_to_string(fixture("fold_v1/export.ndjson")).expect("fixture");
    let export = idfold.export();
    assert!(
        export == expected,
        "{when}: {}",
        first_difference(&export, &expected)
    );
}

/// The first line where two exports differ, for a readable failure.
fn first_difference(got: &str, expected: &str) -> String {
    for (n, (g, e)) in got.lines().zip(expected.lines()).enumerate() {
        if g != e {
            return format!("line {}:\n got      {g}\n expected {e}", n + 1);
        }
    }
    format!(
        "{} lines, expected {}",
        got.lines().count(),
        expected.lines().count()
    )
}

#[test]
fn the_memory_budget_bounds_the_fold_from_flag_environment_or_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let expected = sample().export();
    let idfold = Idfold::new();
    idfold.ingest(&fixture("sample.ndjson"));
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = idfold.command("run", args);
        command.env_remove("IDFOLD_FOLD_MEMORY_BUDGET");
        for (name, value) in env {
            command.env(name, value);
        }
        let out = command.output().expect("idfold runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let refused = |(code, stderr): (Option<i32>, String), names: &[&str]| {
        assert_eq!(code, Some(2), "a usage error: {stderr}");
        for name in names {
            assert!(stderr.contains(name), "{name} in {stderr}");
        }
    };

    // Below the floor: refused before anything is folded.
    refused(
        run(&["--memory-budget", "3", "--until-idle"], &[]),
        &[
            "--memory-budget",
            "IDFOLD_FOLD_MEMORY_BUDGET",
            "at least 16MiB",
        ],
    );
    refused(
        run(&["--until-idle"], &[("IDFOLD_FOLD_MEMORY_BUDGET", "lots")]),
        &["IDFOLD_FOLD_MEMORY_BUDGET", "not a size"],
    );
    assert_eq!(idfold.export(), "", "nothing was folded");
    // The old setting is refused, naming the new one.
    refused(
        run(&["--until-idle"], &[("IDFOLD_MAX_RESIDENT_EVENTS", "5000")]),
        &["IDFOLD_MAX_RESIDENT_EVENTS", "--memory-budget"],
    );

    // The file's budget is used unless the environment or a flag sets one.
    let config = dir.path().join("idfold.toml");
    std::fs::write(&config, "[fold]\nmemory_budget = \"64MiB\"\n").expect("written");
    let config = config.to_str().expect("UTF-8");
    let too_small = [("IDFOLD_FOLD_MEMORY_BUDGET", "3")];
    refused(
        run(&["--config", config, "--until-idle"], &too_small),
        &["at least 16MiB"],
    );
    let (code, stderr) = run(
        &[
            "--config",
            config,
            "--memory-budget",
            "64MiB",
            "--until-idle",
        ],
        &too_small,
    );
    assert_eq!(
        code,
        Some(0),
        "the flag wins over the environment: {stderr}"
    );
    assert_eq!(
        idfold.export(),
        expected,
        "a smaller budget changes no answer"
    );

    let check = |text: &str| {
        let file = dir.path().join("check.toml");
        std::fs::write(&file, text).expect("written");
        let out = std::process::Command::new(harness::BIN)
            .args(["config", "check", "--config"])
            .arg(&file)
            .env_remove("IDFOLD_FOLD_MEMORY_BUDGET")
            .output()
            .expect("idfold runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = check("[fold]\nmemory_budget = \"64MiB\"\n");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("IDFOLD_FOLD_MEMORY_BUDGET=64MiB"),
        "{stdout}"
    );
    let (code, _, stderr) = check("[limits]\nmax_resident_events = 2000000\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("`limits.max_resident_events`")
            && stderr.contains("`fold.memory_budget`")
            && stderr.contains("line 2"),
        "{stderr}"
    );
    let (code, _, stderr) = check("[fold]\nmemory_budget = \"3\"\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("`fold.memory_budget`") && stderr.contains("at least 16MiB"),
        "{stderr}"
    );
}

/// A data directory the v1 engine wrote is refused, with the way out, by
/// every command that reads the projection; `idfold rebuild` folds it into
/// the v2 format (its erasure kept) and the answers are the v1 answers.
#[test]
fn a_v1_data_directory_is_refused_until_rebuilt_and_then_answers_the_same() {
    let idfold = Idfold::not_created();
    let parent = idfold.data().parent().expect("a parent").to_owned();
    let untar = std::process::Command::new("tar")
        .arg("xzf")
        .arg(fixture("fold_v1/data-dir.tar.gz"))
        .arg("-C")
        .arg(&parent)
        .status()
        .expect("tar runs");
    assert!(untar.success());
    std::fs::rename(parent.join("d"), idfold.data()).expect("the fixture's directory");
    for (sub, args) in [
        ("mau", vec!["--workspace", "ws-1"]),
        ("run", vec!["--until-idle"]),
        ("export", vec![]),
    ] {
        let out = idfold.run(sub, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{sub} refuses a v1 projection");
        assert!(
            stderr.contains("run `idfold rebuild`") && stderr.contains("older idfold"),
            "{sub}: {stderr}"
        );
        assert_eq!(
            stderr.matches("idfold rebuild").count(),
            1,
            "said once: {stderr}"
        );
    }
    idfold.ok("rebuild", &[]);
    assert_v1_export(&idfold, "after the rebuild");
    // The erasure survived the format change: the person's events, still
    // in no log, and a re-delivery of one is dropped.
    let erased_event = std::fs::read_to_string(fixture("fold_v1/events-before-erasure.ndjson"))
        .expect("fixture")
        .lines()
        .find(|l| l.contains("\"user_id\":\"user-2\"") && l.contains("\"workspace_id\":\"ws-1\""))
        .expect("an event of the erased person")
        .to_owned();
    let again = idfold.data().parent().expect("parent").join("again.ndjson");
    std::fs::write(&again, format!("{erased_event}\n")).expect("written");
    idfold.ingest(&again);
    idfold.ok("run", &["--until-idle"]);
    assert_v1_export(&idfold, "after a re-delivered erased event");
}
