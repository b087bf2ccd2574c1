//! The partitions this instance holds, and whether each one's state is
//! complete: a partition assigned without local state is replayed from its
//! start, and until it reaches the end the log had when it was assigned,
//! its workspaces' reads must not be answered from half a state.

use std::collections::BTreeMap;
use std::sync::RwLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionState {
    /// Folding from its stored position up to `target` (the end of the log
    /// when it was assigned).
    CatchingUp {
        position: u64,
        target: u64,
    },
    Ready,
}

#[derive(Debug, Default)]
pub struct Ownership {
    held: RwLock<BTreeMap<u32, PartitionState>>,
    partitions: RwLock<u32>,
}

impl Ownership {
    /// Partitions of the canonical log (known once the fold stage started).
    pub fn set_partition_count(&self, partitions: u32) {
        if let Ok(mut count) = self.partitions.write() {
            *count = partitions;
        }
    }

    pub fn partition_count(&self) -> u32 {
        self.partitions.read().map_or(0, |c| *c)
    }

    /// A partition assigned, at `position` in local state, with the log's end
    /// at `target`.
    pub fn assigned(&self, partition: u32, position: u64, target: u64) {
        let state = if position >= target {
            PartitionState::Ready
        } else {
            PartitionState::CatchingUp { position, target }
        };
        if let Ok(mut held) = self.held.write() {
            held.insert(partition, state);
        }
    }

    /// The fold committed `partition` up to `position`.
    pub fn advanced(&self, partition: u32, position: u64) {
        if let Ok(mut held) = self.held.write() {
            if let Some(state) = held.get_mut(&partition) {
                if let PartitionState::CatchingUp { target, .. } = *state {
                    *state = if position >= target {
                        PartitionState::Ready
                    } else {
                        PartitionState::CatchingUp { position, target }
                    };
                }
            }
        }
    }

    pub fn revoked(&self, partition: u32) {
        if let Ok(mut held) = self.held.write() {
            held.remove(&partition);
        }
    }

    /// Every partition held, with its state.
    pub fn held(&self) -> BTreeMap<u32, PartitionState> {
        self.held.read().map(|h| h.clone()).unwrap_or_default()
    }

    pub fn state_of(&self, partition: u32) -> Option<PartitionState> {
        self.held.read().ok()?.get(&partition).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_is_ready_once_it_reaches_the_end_it_was_assigned_with() {
        let ownership = Ownership::default();
        ownership.assigned(2, 0, 100);
        assert_eq!(
            ownership.state_of(2),
            Some(PartitionState::CatchingUp {
                position: 0,
                target: 100
            })
        );
        ownership.advanced(2, 60);
        assert!(matches!(
            ownership.state_of(2),
            Some(PartitionState::CatchingUp { position: 60, .. })
        ));
        ownership.advanced(2, 100);
        assert_eq!(ownership.state_of(2), Some(PartitionState::Ready));
        // Later records do not make a ready partition catch up again.
        ownership.advanced(2, 150);
        assert_eq!(ownership.state_of(2), Some(PartitionState::Ready));
        ownership.assigned(3, 40, 40);
        assert_eq!(ownership.state_of(3), Some(PartitionState::Ready));
        ownership.revoked(2);
        assert_eq!(ownership.state_of(2), None);
    }
}
