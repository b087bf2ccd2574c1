//! Several instances on one consumer group, on a real broker: the
//! canonical log's partitions are split between them, every read finds the
//! instance holding its workspace (or waits with a 503, never a wrong
//! number), and what they answer together is what one instance folding
//! everything answers, across a SIGKILL and a restart.

mod harness;

use std::time::Duration;

use harness::http::Server;
use harness::kafka::{on_kafka, split_lines, test_broker, KafkaTopics};
use harness::{generated_workload, Idfold};
use serde_json::Value;

const WORKSPACES: usize = 20;

fn token(workspace: &str) -> String {
    format!("rt_{workspace}_scale_0123456789")
}

/// A config with the generated workload's workspaces and their secrets.
fn config(dir: &std::path::Path) -> String {
    let mut text = String::new();
    for i in 0..WORKSPACES {
        let w = format!("ws-{i}");
        text.push_str(&format!(
            "[[workspaces]]\nid = \"{w}\"\nwrite_keys = [\"wk_{w}_scale_0123456789\"]\nread_tokens = [\"{}\"]\n",
            token(&w)
        ));
    }
    let path = dir.join("scale.toml");
    std::fs::write(&path, text).expect("written");
    path.to_str().expect("UTF-8").to_owned()
}

/// What one instance folding everything answers: (path, JSON) for every
/// workspace's MAU row of every active month, and for every profile.
fn expected_reads(export: &str) -> Vec<(String, String, Value)> {
    harness::export_records(export)
        .into_iter()
        .map(|(record, workspace, value)| {
            let path = if record == "mau" {
                format!(
                    "/v1/workspaces/{workspace}/mau?month={}",
                    value["month"].as_str().unwrap_or_default()
                )
            } else {
                format!(
                    "/v1/workspaces/{workspace}/profiles/{}",
                    value["id"].as_str().unwrap_or_default()
                )
            };
            (workspace, path, value)
        })
        .collect()
}

/// Every expected read, each sent to the next instance in turn, answers
/// the expected JSON.
fn all_reads_agree(servers: &[&Server], reads: &[(String, String, Value)]) -> Result<(), String> {
    let client = harness::http::agent();
    for (i, (workspace, path, expected)) in reads.iter().enumerate() {
        let server = servers[i % servers.len()];
        let auth = format!("Bearer {}", token(workspace));
        let reply = harness::http::try_request(
            &client,
            "GET",
            &server.url(path),
            &[("Authorization", &auth)],
            b"",
        )
        .map_err(|e| format!("{path}: {e}"))?;
        if reply.status != 200 || &reply.body != expected {
            return Err(format!("{path}: {} {}", reply.status, reply.text));
        }
    }
    Ok(())
}

fn wait_until_agree(what: &str, servers: &[&Server], reads: &[(String, String, Value)]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        match all_reads_agree(servers, reads) {
            Ok(()) => return,
            Err(last) if std::time::Instant::now() > deadline => {
                let logs: Vec<String> = servers.iter().map(|s| s.log()).collect();
                panic!(
                    "{what}: the instances never agreed with one instance's fold; last: {last}\n{}",
                    logs.join("\n----\n")
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[test]
fn three_instances_answer_what_one_would_across_a_kill_and_a_restart() {
    let (dir, workload) = generated_workload(6_000, 21);
    let (first, second) = split_lines(&workload, 3_000);
    let reference = Idfold::new();
    reference.ingest(&workload);
    let reads = expected_reads(&reference.fold());
    let workspaces: std::collections::BTreeSet<&str> =
        reads.iter().map(|(w, _, _)| w.as_str()).collect();
    assert!(workspaces.len() >= 10, "many workspaces: {workspaces:?}");

    let topics = KafkaTopics::create(&test_broker(), 6);
    let config = config(dir.path());
    let args_of = |instance: &str| -> Vec<String> {
        let mut args = topics.args();
        args.extend(
            [
                "--config",
                &config,
                "--instance-id",
                instance,
                "--stages",
                "fold",
            ]
            .map(String::from),
        );
        args
    };
    let start = |data: &Idfold, instance: &str| {
        let args = args_of(instance);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::start(data, &refs, &[])
    };
    let data: Vec<Idfold> = (0..3).map(|_| Idfold::new()).collect();
    let first_server = start(&data[0], "i0");
    let killed = start(&data[1], "i1");
    let third = start(&data[2], "i2");

    // Half the events, then the rest while one instance is SIGKILLed.
    let writer = Idfold::new();
    on_kafka(
        &writer,
        &topics,
        "ingest",
        &[first.to_str().expect("UTF-8")],
    );
    let (bootstrap, prefix, rest) = (topics.bootstrap.clone(), topics.prefix.clone(), second);
    let late = std::thread::spawn(move || {
        let out = std::process::Command::new(harness::BIN)
            .args(["ingest", "--kafka", &bootstrap, "--topic-prefix", &prefix])
            .arg(&rest)
            .env_remove("IDFOLD_DATA")
            .output()
            .expect("idfold runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    std::thread::sleep(Duration::from_millis(300));
    let log = killed.kill();
    late.join().expect("the second half is in the log");

    // The other two take its partitions, rebuild them, and agree.
    wait_until_agree("after the kill", &[&first_server, &third], &reads);
    // Once the group settles, the two survivors share the six partitions.
    let mut members = Value::Null;
    let settled = (0..60).any(|_| {
        members = topics.group_members("fold");
        let held: Vec<usize> = members["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["partitions"].as_array().map_or(0, Vec::len))
            .collect();
        let done =
            held.len() == 2 && held.iter().all(|n| *n > 0) && held.iter().sum::<usize>() == 6;
        if !done {
            std::thread::sleep(Duration::from_millis(500));
        }
        done
    });
    assert!(
        settled,
        "the partitions are split between the survivors: {members}\n{log}"
    );

    // It comes back under its name, rejoins, and all three agree.
    let back = start(&data[1], "i1");
    wait_until_agree("after the restart", &[&first_server, &back, &third], &reads);
}
