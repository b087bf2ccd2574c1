//! The dashboard's sign-ins, kept by the server: the cookie holds a random
//! session id, never the read token, and the server maps it to its
//! workspace and expiry. Sessions live in this process's memory: a restart
//! signs everyone out, and each instance knows only its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;

/// How long a sign-in lasts, enforced here (the cookie's Max-Age only
/// tells the browser when to drop it).
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);
/// Sessions held at once; a sign-in past it ends the oldest session.
pub const MAX_SESSIONS: usize = 10_000;
/// Random bytes in a session id (256 bits: not guessable).
const ID_BYTES: usize = 32;

/// Signed-in dashboard sessions: id -> (workspace, expiry), at most `cap`,
/// the oldest evicted first. The clock is given to each call, so expiry is
/// tested without waiting.
#[derive(Debug)]
pub struct SessionStore {
    ttl: Duration,
    cap: usize,
    inner: Mutex<Sessions>,
}

#[derive(Debug, Default)]
struct Sessions {
    by_id: HashMap<String, Session>,
    /// Creation order, for evicting the oldest: sequence number -> id.
    by_age: BTreeMap<u64, String>,
    next: u64,
}

#[derive(Debug)]
struct Session {
    workspace: String,
    expires: Instant,
    sequence: u64,
}

impl Sessions {
    fn remove(&mut self, id: &str) -> Option<Session> {
        let session = self.by_id.remove(id)?;
        self.by_age.remove(&session.sequence);
        Some(session)
    }

    fn oldest(&self) -> Option<&String> {
        self.by_age.values().next()
    }
}

impl Default for SessionStore {
    fn default() -> Self {
        SessionStore::new(SESSION_TTL, MAX_SESSIONS)
    }
}

impl SessionStore {
    pub fn new(ttl: Duration, cap: usize) -> SessionStore {
        SessionStore {
            ttl,
            cap: cap.max(1),
            inner: Mutex::new(Sessions::default()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session for `workspace`, with a fresh id from the operating
    /// system's CSPRNG.
    pub fn create(&self, workspace: &str, now: Instant) -> String {
        let mut bytes = [0u8; ID_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut sessions = self.lock();
        // Creation order is expiry order: the expired are all at the front.
        while let Some(oldest) = sessions.oldest().cloned() {
            let expired = sessions.by_id.get(&oldest).is_none_or(|s| s.expires <= now);
            if !expired && sessions.by_id.len() < self.cap {
                break;
            }
            sessions.remove(&oldest);
        }
        let sequence = sessions.next;
        sessions.next += 1;
        sessions.by_age.insert(sequence, id.clone());
        sessions.by_id.insert(
            id.clone(),
            Session {
                workspace: workspace.to_owned(),
                expires: now + self.ttl,
                sequence,
            },
        );
        id
    }

    /// The workspace of a live session; an expired one is forgotten.
    pub fn workspace(&self, id: &str, now: Instant) -> Option<String> {
        let mut sessions = self.lock();
        let session = sessions.by_id.get(id)?;
        if session.expires <= now {
            sessions.remove(id);
            return None;
        }
        Some(session.workspace.clone())
    }

    /// Ends a session (sign-out): its id opens nothing from now on.
    pub fn revoke(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        // The map stays consistent whatever panicked while holding it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_session_opens_its_workspace_until_it_expires() {
        let store = SessionStore::new(8 * HOUR, 10);
        let start = Instant::now();
        let id = store.create("acme", start);
        assert_eq!(store.workspace(&id, start).as_deref(), Some("acme"));
        let almost = start + 8 * HOUR - Duration::from_secs(1);
        assert_eq!(store.workspace(&id, almost).as_deref(), Some("acme"));
        assert_eq!(store.workspace(&id, start + 8 * HOUR), None);
        // Forgotten once seen expired, even asked with an earlier clock.
        assert_eq!(store.workspace(&id, start), None);
        assert!(store.is_empty());
    }

    #[test]
    fn a_revoked_session_opens_nothing() {
        let store = SessionStore::default();
        let now = Instant::now();
        let id = store.create("acme", now);
        let other = store.create("acme", now);
        assert!(store.revoke(&id));
        assert_eq!(store.workspace(&id, now), None);
        assert!(!store.revoke(&id), "revoked once");
        assert_eq!(store.workspace(&other, now).as_deref(), Some("acme"));
    }

    #[test]
    fn ids_are_random_256_bit_hex_and_unknown_ids_open_nothing() {
        let store = SessionStore::default();
        let now = Instant::now();
        let ids: std::collections::HashSet<String> =
            (0..100).map(|_| store.create("acme", now)).collect();
        assert_eq!(ids.len(), 100);
        for id in &ids {
            assert_eq!(id.len(), 64);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_eq!(store.workspace("", now), None);
        assert_eq!(store.workspace("acme", now), None);
    }

    #[test]
    fn past_the_cap_the_oldest_session_is_evicted() {
        let store = SessionStore::new(8 * HOUR, 3);
        let now = Instant::now();
        let ids: Vec<String> = (0..3)
            .map(|i| store.create(&format!("w{i}"), now + Duration::from_secs(i)))
            .collect();
        let newest = store.create("w3", now + Duration::from_secs(3));
        assert_eq!(store.len(), 3);
        assert_eq!(store.workspace(&ids[0], now), None, "the oldest went");
        assert_eq!(store.workspace(&ids[1], now).as_deref(), Some("w1"));
        assert_eq!(store.workspace(&ids[2], now).as_deref(), Some("w2"));
        assert_eq!(store.workspace(&newest, now).as_deref(), Some("w3"));
        // A revoked session frees its place: nothing live is evicted.
        store.revoke(&ids[1]);
        store.create("w4", now + Duration::from_secs(4));
        assert_eq!(store.workspace(&ids[2], now).as_deref(), Some("w2"));
    }

    #[test]
    fn expired_sessions_are_dropped_when_a_new_one_is_made() {
        let store = SessionStore::new(HOUR, 100);
        let start = Instant::now();
        for _ in 0..50 {
            store.create("acme", start);
        }
        store.create("acme", start + 2 * HOUR);
        assert_eq!(store.len(), 1, "memory holds only live sessions");
    }
}
