//! Who may write where: workspaces and their write keys, from a TOML file
//! and the environment, checked in constant time and never logged.

use std::path::Path;

use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
    /// Bearer tokens of the read API, separate from the write keys.
    #[serde(default)]
    pub read_tokens: Vec<String>,
}

impl std::fmt::Debug for WorkspaceAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are secrets: only their number is shown.
        f.debug_struct("WorkspaceAccess")
            .field("id", &self.id)
            .field("write_keys", &self.write_keys.len())
            .field("read_tokens", &self.read_tokens.len())
            .finish()
    }
}

/// Why a request's credentials were not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials")]
    Missing,
    #[error("the credentials are not valid")]
    Invalid,
    /// The `Authorization` header is not of the scheme(s) named.
    #[error("the `Authorization` header is not valid {0} credentials")]
    Malformed(&'static str),
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
    #[error("a write key or read token of workspace {workspace} is shorter than {MIN_KEY_CHARS} characters")]
    ShortKey { workspace: String },
    #[error("a write key or read token of workspace {workspace} contains `:` or whitespace: it could not be sent in an Authorization header")]
    KeyCharacters { workspace: String },
    #[error("a read token of workspace {workspace} is also a write key: keep the two apart")]
    TokenIsWriteKey { workspace: String },
    #[error("one write key or read token is listed for two workspaces ({first} and {second}): a secret decides its workspace")]
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
        self.add_env_entries(entries, |w| &mut w.write_keys)
    }

    /// Adds `workspace:token` entries, comma-separated (`IDFOLD_READ_TOKENS`).
    pub fn add_env_read_tokens(&mut self, entries: &str) -> Result<(), AccessError> {
        self.add_env_entries(entries, |w| &mut w.read_tokens)
    }

    fn add_env_entries(
        &mut self,
        entries: &str,
        secrets: fn(&mut WorkspaceAccess) -> &mut Vec<String>,
    ) -> Result<(), AccessError> {
        for (index, entry) in entries.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let (workspace, secret) = entry
                .split_once(':')
                .ok_or(AccessError::EnvEntry { index })?;
            let position = match self.workspaces.iter().position(|w| w.id == workspace) {
                Some(p) => p,
                None => {
                    self.workspaces.push(WorkspaceAccess {
                        id: workspace.to_owned(),
                        write_keys: Vec::new(),
                        read_tokens: Vec::new(),
                    });
                    self.workspaces.len() - 1
                }
            };
            if let Some(w) = self.workspaces.get_mut(position) {
                secrets(w).push(secret.to_owned());
            }
        }
        Ok(())
    }

    pub fn workspace_ids(&self) -> Vec<&str> {
        self.workspaces.iter().map(|w| w.id.as_str()).collect()
    }

    /// Checks every workspace and write key and builds the lookup.
    pub fn write_keys(&self) -> Result<WriteKeys, AccessError> {
        self.key_ring(|w| &w.write_keys).map(WriteKeys)
    }

    /// The read API's tokens; none may also be a write key.
    pub fn read_tokens(&self) -> Result<ReadTokens, AccessError> {
        let tokens = self.key_ring(|w| &w.read_tokens)?;
        let keys = self.write_keys()?;
        for workspace in &self.workspaces {
            if workspace
                .read_tokens
                .iter()
                .any(|t| keys.lookup(t).is_some())
            {
                return Err(AccessError::TokenIsWriteKey {
                    workspace: workspace.id.clone(),
                });
            }
        }
        Ok(ReadTokens(tokens))
    }

    fn key_ring(
        &self,
        secrets: fn(&WorkspaceAccess) -> &Vec<String>,
    ) -> Result<KeyRing, AccessError> {
        let mut ring = KeyRing::default();
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
            for secret in secrets(workspace) {
                if secret.contains(':') || secret.chars().any(char::is_whitespace) {
                    return Err(AccessError::KeyCharacters {
                        workspace: id.clone(),
                    });
                }
                if secret.chars().count() < MIN_KEY_CHARS {
                    return Err(AccessError::ShortKey {
                        workspace: id.clone(),
                    });
                }
                if let Some(first) = ring.lookup(secret) {
                    if first != id {
                        return Err(AccessError::SharedKey {
                            first: first.to_owned(),
                            second: id.clone(),
                        });
                    }
                }
                ring.entries.push((digest(secret), id.clone()));
            }
        }
        Ok(ring)
    }
}

/// Secrets by their SHA-256 digests, each naming its workspace. A lookup
/// compares the presented secret's digest with every entry in constant
/// time, so neither the time taken nor an early exit says how much of a
/// secret was right.
#[derive(Default, Clone)]
pub struct KeyRing {
    entries: Vec<([u8; 32], String)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("secrets", &self.entries.len())
            .finish()
    }
}

impl KeyRing {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The workspace of a secret, if it is one.
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
}

/// The read API's Bearer tokens.
#[derive(Debug, Default, Clone)]
pub struct ReadTokens(KeyRing);

impl ReadTokens {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The workspace an `Authorization: Bearer TOKEN` header may read.
    pub fn workspace(&self, authorization: Option<&[u8]>) -> Result<&str, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        let text = std::str::from_utf8(header).map_err(|_| AuthError::Malformed("Bearer"))?;
        let (scheme, token) = text
            .trim()
            .split_once(' ')
            .ok_or(AuthError::Malformed("Bearer"))?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::Malformed("Bearer"));
        }
        self.0.lookup(token.trim()).ok_or(AuthError::Invalid)
    }

    /// The workspace of a token given on its own (the dashboard's cookie).
    pub fn workspace_of_token(&self, token: &str) -> Option<&str> {
        self.0.lookup(token.trim())
    }
}

/// Ingestion's write keys.
#[derive(Debug, Default, Clone)]
pub struct WriteKeys(KeyRing);

impl WriteKeys {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The workspace of a key, if it is one.
    pub fn lookup(&self, presented: &str) -> Option<&str> {
        self.0.lookup(presented)
    }

    /// The workspace a request may write to: the key from the
    /// `Authorization` header (Basic with the key as user name, Segment's
    /// way, or Bearer), else the body's `writeKey`.
    pub fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        body_write_key: Option<&str>,
    ) -> Result<&str, AuthError> {
        let presented = match authorization {
            Some(header) => credentials(header)?,
            None => body_write_key
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .ok_or(AuthError::Missing)?,
        };
        self.lookup(&presented).ok_or(AuthError::Invalid)
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The write key in an `Authorization` header.
fn credentials(header: &[u8]) -> Result<String, AuthError> {
    let text = std::str::from_utf8(header)
        .map_err(|_| AuthError::Malformed("Basic or Bearer"))?
        .trim();
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| AuthError::Malformed("Basic"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| AuthError::Malformed("Basic"))?;
        // Segment sends `key:`; some clients put the key in the password.
        let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        let key = if user.is_empty() { password } else { user };
        if key.is_empty() {
            return Err(AuthError::Missing);
        }
        Ok(key.to_owned())
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Ok(rest.to_owned())
    } else {
        Err(AuthError::Malformed("Basic or Bearer"))
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
        let code = |h: Option<&[u8]>, b: Option<&str>| keys.authenticate(h, b).err();
        assert_eq!(code(None, None), Some(AuthError::Missing));
        assert_eq!(code(None, Some("")), Some(AuthError::Missing));
        assert_eq!(
            code(None, Some("wk_acme_0123456789abcdeX")),
            Some(AuthError::Invalid)
        );
        assert_eq!(
            code(Some(b"Basic !!!"), None),
            Some(AuthError::Malformed("Basic"))
        );
        assert_eq!(
            code(Some(b"Digest x"), None),
            Some(AuthError::Malformed("Basic or Bearer"))
        );
        assert_eq!(code(Some(&basic(":")), None), Some(AuthError::Missing));
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
    fn read_tokens_are_bearer_only_and_apart_from_write_keys() {
        let mut config = AccessConfig::default();
        assert!(config.add_env_keys(&format!("acme:{KEY_A}")).is_ok());
        assert!(config
            .add_env_read_tokens("acme:rt_acme_0123456789abcdef")
            .is_ok());
        let tokens = config.read_tokens().unwrap_or_default();
        let bearer = b"Bearer rt_acme_0123456789abcdef";
        assert_eq!(tokens.workspace(Some(bearer)), Ok("acme"));
        assert_eq!(tokens.workspace(None), Err(AuthError::Missing));
        assert_eq!(
            tokens.workspace(Some(b"Bearer nope")),
            Err(AuthError::Invalid)
        );
        // A write key is not a read token, and cannot be made one.
        let write_key = format!("Bearer {KEY_A}");
        assert_eq!(
            tokens.workspace(Some(write_key.as_bytes())),
            Err(AuthError::Invalid)
        );
        assert!(config.add_env_read_tokens(&format!("acme:{KEY_A}")).is_ok());
        assert!(config
            .read_tokens()
            .err()
            .is_some_and(|e| e.to_string().contains("also a write key")));
    }

    #[test]
    fn debug_output_never_shows_a_key() {
        let config = AccessConfig {
            workspaces: vec![WorkspaceAccess {
                id: "acme".into(),
                write_keys: vec![KEY_A.into()],
                read_tokens: vec![KEY_B.into()],
            }],
        };
        let shown = format!("{config:?} {:?}", keys());
        assert!(!shown.contains(KEY_A), "{shown}");
    }
}
