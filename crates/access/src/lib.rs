//! Who may write and who may read which workspace: workspaces with their
//! write keys (ingestion) and read tokens (the read API), from a TOML file
//! and the environment. Secrets are kept as SHA-256 digests, compared in
//! constant time, and never shown by `Debug`.

mod config;

pub use config::{
    AccessConfig, AccessError, AuthError, KeyRing, ReadTokens, WorkspaceAccess, WriteKeys,
};
