//! `idfold config check`: parse the configuration file, check every value,
//! and explain each problem, without ever printing a secret.

use std::path::Path;
use std::process::ExitCode;

use idfold_config::IdfoldConfig;

pub fn check(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Some(path) = path else {
        anyhow::bail!(
            "give the file to check: idfold config check --config FILE (or IDFOLD_CONFIG)"
        );
    };
    let (config, mut problems) = match IdfoldConfig::read(path) {
        Ok(read) => read,
        Err(error) => {
            eprintln!("{:#}", anyhow::Error::from(error));
            return Ok(ExitCode::from(2));
        }
    };
    // The keys of the wrong shape first, then the values of the rest.
    problems.extend(config.check());
    if !problems.is_empty() {
        eprintln!("{}: {} problem(s)", path.display(), problems.len());
        for problem in &problems {
            eprintln!("  - {problem}");
        }
        return Ok(ExitCode::from(2));
    }
    let keys: usize = config.workspaces.iter().map(|w| w.write_keys.len()).sum();
    let tokens: usize = config.workspaces.iter().map(|w| w.read_tokens.len()).sum();
    let ids: Vec<&str> = config.workspaces.iter().map(|w| w.id.as_str()).collect();
    println!("{}: valid", path.display());
    println!(
        "  workspaces: {} ({}), {keys} write keys, {tokens} read tokens",
        ids.len(),
        if ids.is_empty() {
            "none: serve runs the development workspace on loopback".to_owned()
        } else {
            ids.join(", ")
        }
    );
    match &config.kafka {
        Some(kafka) => println!(
            "  log: Kafka at {} (topic prefix {})",
            kafka.bootstrap,
            kafka.topic_prefix.as_deref().unwrap_or("idfold")
        ),
        None => println!("  log: embedded, in the data directory"),
    }
    for (name, value) in config.environment() {
        println!("  {name}={value}");
    }
    Ok(ExitCode::SUCCESS)
}
