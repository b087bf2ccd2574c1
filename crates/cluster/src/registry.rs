//! What every instance last said about itself (read from the compacted
//! `P.instances` topic): where it answers, and which partitions it holds,
//! ready or catching up.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

/// One instance's announcement, the value of its `P.instances` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub instance: String,
    /// Where its HTTP API answers, such as `http://10.0.0.7:8088`.
    pub url: String,
    /// Partitions it holds whose state is complete.
    pub ready: Vec<u32>,
    /// Partitions it holds that are still being replayed.
    pub catching_up: Vec<u32>,
    /// When it said so (milliseconds since the epoch, its clock): of two
    /// instances claiming a partition, the later claim wins.
    pub at_ms: u64,
}

/// An announcement not renewed within this long no longer counts: three
/// announcement periods (an instance repeats itself every 5 s).
pub const CLAIM_LIFETIME_MS: u64 = 15_000;
/// Clocks differ a little; an announcement further ahead than this is not
/// believed (it would outrank every honest one).
const CLOCK_SKEW_MS: u64 = 60_000;

#[derive(Debug, Default)]
pub struct Registry {
    instances: RwLock<BTreeMap<String, InstanceInfo>>,
}

impl Registry {
    /// An announcement read; `None` is a tombstone (the instance left).
    pub fn update(&self, instance: &str, info: Option<InstanceInfo>) {
        if let Ok(mut instances) = self.instances.write() {
            match info {
                Some(info) => {
                    // Records of one key arrive in order; keep the newest.
                    let newer = instances
                        .get(instance)
                        .is_none_or(|known| known.at_ms <= info.at_ms);
                    if newer {
                        instances.insert(instance.to_owned(), info);
                    }
                }
                None => {
                    instances.remove(instance);
                }
            }
        }
    }

    /// The instance that most recently claimed `partition`, other than
    /// `except` (this instance), with whether it says the partition is
    /// ready. Claims older than `CLAIM_LIFETIME_MS` or from the future (as
    /// of `now_ms`) do not count.
    pub fn owner_of(
        &self,
        partition: u32,
        except: &str,
        now_ms: u64,
    ) -> Option<(InstanceInfo, bool)> {
        let instances = self.instances.read().ok()?;
        instances
            .values()
            .filter(|i| i.instance != except)
            .filter(|i| {
                i.at_ms.saturating_add(CLAIM_LIFETIME_MS) >= now_ms
                    && i.at_ms <= now_ms.saturating_add(CLOCK_SKEW_MS)
            })
            .filter_map(|i| {
                let ready = i.ready.contains(&partition);
                (ready || i.catching_up.contains(&partition)).then(|| (i.clone(), ready))
            })
            .max_by_key(|(i, _)| i.at_ms)
    }
}
