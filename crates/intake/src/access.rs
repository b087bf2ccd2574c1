//! Who may write where: workspaces and their write keys, from a TOML file
//! and the environment, checked in constant time and never logged.

use std::path::Path;

use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::IntakeError;

/// The shortest write key accepted: shorter ones are guessable.
const MIN_KEY_CHARS: usize = 16;

/// The file's shape:
///
/// ```toml
/// [[workspaces]]
/// id = "acme"
/// write_keys = ["wk_acme_0123456789abcdef"]
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    #[serde(default)]
    pub workspaces: Vec<WorkspaceAccess>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceAccess {
    pub id: String,
    #[serde(default)]
    pub write_keys: Vec<String>,
}

impl std::fmt::Debug for WorkspaceAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are secrets: only their number is shown.
        f.debug_struct("WorkspaceAccess")
            .field("id", &self.id)
            .field("write_keys", &self.write_keys.len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid: {detail}")]
    Parse { path: String, detail: String },
    #[error("IDFOLD_WRITE_KEYS entry {index} is not `workspace:key`")]
    EnvEntry { index: usize },
    #[error("workspace id {id:?} may only contain ASCII letters, digits, `_` and `-` (1 to 64)")]
    WorkspaceId { id: String },
    #[error("a write key of workspace {workspace} is shorter than {MIN_KEY_CHARS} characters")]
    ShortKey { workspace: String },
    #[error("a write key of workspace {workspace} contains `:` or whitespace: it could not be sent as an HTTP Basic user name")]
    KeyCharacters { workspace: String },
    #[error("one write key is listed for two workspaces ({first} and {second}): a key decides its workspace")]
    SharedKey { first: String, second: String },
}

impl AccessConfig {
    pub fn from_file(path: &Path) -> Result<AccessConfig, AccessError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AccessError::Read {
            path: shown.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| AccessError::Parse {
            path: shown,
            detail: e.message().to_owned(),
        })
    }

    /// Adds `workspace:key` entries, comma-separated (`IDFOLD_WRITE_KEYS`).
    pub fn add_env_keys(&mut self, entries: &str) -> Result<(), AccessError> {
        for (index, entry) in entries.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let (workspace, key) = entry
                .split_once(':')
                .ok_or(AccessError::EnvEntry { index })?;
            match self.workspaces.iter_mut().find(|w| w.id == workspace) {
                Some(w) => w.write_keys.push(key.to_owned()),
                None => self.workspaces.push(WorkspaceAccess {
                    id: workspace.to_owned(),
                    write_keys: vec![key.to_owned()],
                }),
            }
        }
        Ok(())
    }

    pub fn workspace_ids(&self) -> Vec<&str> {
        self.workspaces.iter().map(|w| w.id.as_str()).collect()
    }

    /// Checks every entry and builds the lookup.
    pub fn write_keys(&self) -> Result<WriteKeys, AccessError> {
        let mut keys = WriteKeys::default();
        for workspace in &self.workspaces {
            let id = &workspace.id;
            let valid_id = !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_id {
                return Err(AccessError::WorkspaceId { id: id.clone() });
            }
            for key in &workspace.write_keys {
                if key.contains(':') || key.chars().any(char::is_whitespace) {
                    return Err(AccessError::KeyCharacters {
                        workspace: id.clone(),
                    });
                }
                if key.chars().count() < MIN_KEY_CHARS {
                    return Err(AccessError::ShortKey {
                        workspace: id.clone(),
                    });
                }
                if let Some(first) = keys.lookup(key) {
                    if first != id {
                        return Err(AccessError::SharedKey {
                            first: first.to_owned(),
                            second: id.clone(),
                        });
                    }
                }
                keys.entries.push((digest(key), id.clone()));
            }
        }
        Ok(keys)
    }
}

/// Write keys by their SHA-256 digests. A lookup compares the presented
/// key's digest with every entry in constant time, so neither the time
/// taken nor an early exit says how much of a key was right.
#[derive(Default, Clone)]
pub struct WriteKeys {
    entries: Vec<([u8; 32], String)>,
}

impl std::fmt::Debug for WriteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteKeys")
            .field("keys", &self.entries.len())
            .finish()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl WriteKeys {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The workspace of a key, if it is one.
    pub fn lookup(&self, presented: &str) -> Option<&str> {
        let presented = digest(presented);
        let mut found = None;
        for (stored, workspace) in &self.entries {
            if bool::from(stored.ct_eq(&presented)) {
                found = Some(workspace.as_str());
            }
        }
        found
    }

    /// The workspace a request may write to: the key from the
    /// `Authorization` header (Basic with the key as user name, Segment's
    /// way, or Bearer), else the body's `writeKey`.
    pub fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        body_write_key: Option<&str>,
    ) -> Result<&str, IntakeError> {
        let presented = match authorization {
            Some(header) => credentials(header)?,
            None => body_write_key
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .ok_or(IntakeError::MissingWriteKey)?,
        };
        self.lookup(&presented).ok_or(IntakeError::InvalidWriteKey)
    }
}

/// The write key in an `Authorization` header.
fn credentials(header: &[u8]) -> Result<String, IntakeError> {
    let text = std::str::from_utf8(header)
        .map_err(|_| IntakeError::BadAuthorization("Basic or Bearer"))?
        .trim();
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| IntakeError::BadAuthorization("Basic"))?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| IntakeError::BadAuthorization("Basic"))?;
        // Segment sends `key:`; some clients put the key in the password.
        let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        let key = if user.is_empty() { password } else { user };
        if key.is_empty() {
            return Err(IntakeError::MissingWriteKey);
        }
        Ok(key.to_owned())
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Ok(rest.to_owned())
    } else {
        Err(IntakeError::BadAuthorization("Basic or Bearer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "wk_acme_0123456789abcdef";
    const KEY_B: &str = "wk_beta_0123456789abcdef";

    fn keys() -> WriteKeys {
        let mut config: AccessConfig = toml::from_str(&format!(
            "[[workspaces]]\nid = \"acme\"\nwrite_keys = [\"{KEY_A}\"]\n"
        ))
        .unwrap_or_default();
        let added = config.add_env_keys(&format!("beta:{KEY_B}"));
        assert!(added.is_ok());
        config.write_keys().unwrap_or_default()
    }

    fn basic(user_pass: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
        .into_bytes()
    }

    #[test]
    fn every_way_of_sending_a_key_finds_its_workspace() {
        let keys = keys();
        let ok = |h: Option<&[u8]>, b: Option<&str>| keys.authenticate(h, b).ok();
        assert_eq!(ok(Some(&basic(&format!("{KEY_A}:"))), None), Some("acme"));
        assert_eq!(ok(Some(&basic(&format!(":{KEY_B}"))), None), Some("beta"));
        assert_eq!(
            ok(Some(format!("Bearer {KEY_B}").as_bytes()), None),
            Some("beta")
        );
        assert_eq!(ok(None, Some(KEY_A)), Some("acme"));
    }

    #[test]
    fn wrong_missing_and_malformed_keys_are_told_apart() {
        let keys = keys();
        let code =
            |h: Option<&[u8]>, b: Option<&str>| keys.authenticate(h, b).err().map(|e| e.code());
        assert_eq!(code(None, None), Some("missing_write_key"));
        assert_eq!(code(None, Some("")), Some("missing_write_key"));
        assert_eq!(
            code(None, Some("wk_acme_0123456789abcdeX")),
            Some("invalid_write_key")
        );
        assert_eq!(
            code(Some(b"Basic !!!"), None),
            Some("invalid_authorization")
        );
        assert_eq!(code(Some(b"Digest x"), None), Some("invalid_authorization"));
        assert_eq!(code(Some(&basic(":")), None), Some("missing_write_key"));
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        let config = |text: &str| -> Result<WriteKeys, String> {
            let parsed: AccessConfig = toml::from_str(text).map_err(|e| e.to_string())?;
            parsed.write_keys().map_err(|e| e.to_string())
        };
        assert!(config("[[workspaces]]\nid = \"a b\"\n")
            .err()
            .is_some_and(|e| e.contains("may only contain")));
        assert!(
            config("[[workspaces]]\nid = \"a\"\nwrite_keys = [\"short\"]\n")
                .err()
                .is_some_and(|e| e.contains("shorter"))
        );
        let shared = format!(
            "[[workspaces]]\nid = \"a\"\nwrite_keys = [\"{KEY_A}\"]\n[[workspaces]]\nid = \"b\"\nwrite_keys = [\"{KEY_A}\"]\n"
        );
        assert!(config(&shared)
            .err()
            .is_some_and(|e| e.contains("two workspaces")));
        assert!(config("[[workspaces]]\nid = \"a\"\nwrite_key = []\n").is_err());
    }

    #[test]
    fn debug_output_never_shows_a_key() {
        let config = AccessConfig {
            workspaces: vec![WorkspaceAccess {
                id: "acme".into(),
                write_keys: vec![KEY_A.into()],
            }],
        };
        let shown = format!("{config:?} {:?}", keys());
        assert!(!shown.contains(KEY_A), "{shown}");
    }
}
