//! Where a read of a workspace goes.

use crate::ownership::{Ownership, PartitionState};
use crate::partitioner::partition_of;
use crate::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This instance holds the workspace's partition, complete: answer.
    Here,
    /// This instance holds it and is still replaying it: answer 503, never
    /// numbers from half a state.
    Rebuilding { partition: u32 },
    /// Another instance holds it: forward there.
    Forward { url: String, partition: u32 },
    /// Nobody is known to hold it yet (a rebalance in progress): 503.
    Unowned { partition: u32 },
}

/// The route of a read of `workspace` on instance `me`, at `now_ms`.
pub fn route(
    workspace: &str,
    me: &str,
    ownership: &Ownership,
    registry: &Registry,
    now_ms: u64,
) -> Route {
    let count = ownership.partition_count();
    let partition = partition_of(workspace, count);
    if count == 0 {
        // The canonical log's size is not known yet: nobody can be named.
        return Route::Unowned { partition };
    }
    match ownership.state_of(partition) {
        Some(PartitionState::Ready) => Route::Here,
        Some(PartitionState::CatchingUp { .. }) => Route::Rebuilding { partition },
        None => match registry.owner_of(partition, me, now_ms) {
            Some((owner, _)) => Route::Forward {
                url: owner.url,
                partition,
            },
            None => Route::Unowned { partition },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{InstanceInfo, CLAIM_LIFETIME_MS};

    fn info(instance: &str, ready: Vec<u32>, catching_up: Vec<u32>, at_ms: u64) -> InstanceInfo {
        InstanceInfo {
            instance: instance.into(),
            url: format!("http://{instance}"),
            ready,
            catching_up,
            at_ms,
        }
    }

    #[test]
    fn reads_go_where_the_partition_is_held_and_never_to_half_a_state() {
        let ownership = Ownership::default();
        ownership.set_partition_count(6);
        let registry = Registry::default();
        let p = partition_of("acme", 6);
        let route = |w: &str, me: &str, o: &Ownership, r: &Registry| route(w, me, o, r, 30);
        assert_eq!(
            route("acme", "a", &ownership, &registry),
            Route::Unowned { partition: p }
        );
        registry.update("b", Some(info("b", vec![p], vec![], 10)));
        assert_eq!(
            route("acme", "a", &ownership, &registry),
            Route::Forward {
                url: "http://b".into(),
                partition: p
            }
        );
        // c took it over later (b was killed): the later claim wins.
        registry.update("c", Some(info("c", vec![], vec![p], 20)));
        assert!(matches!(
            route("acme", "a", &ownership, &registry),
            Route::Forward { url, .. } if url == "http://c"
        ));
        ownership.assigned(p, 0, 50);
        assert_eq!(
            route("acme", "a", &ownership, &registry),
            Route::Rebuilding { partition: p }
        );
        ownership.advanced(p, 50);
        assert_eq!(route("acme", "a", &ownership, &registry), Route::Here);
        // An older announcement does not replace a newer one.
        registry.update("c", Some(info("c", vec![], vec![], 5)));
        assert!(registry
            .owner_of(p, "a", 30)
            .is_some_and(|(i, _)| i.instance == "c"));
        // A claim not renewed for a while (its instance was killed) lapses.
        assert!(registry
            .owner_of(p, "a", 20 + CLAIM_LIFETIME_MS + 1)
            .is_none());
        // A claim from the future is not believed.
        registry.update("d", Some(info("d", vec![p], vec![], 10_000_000)));
        assert!(registry
            .owner_of(p, "a", 30)
            .is_some_and(|(i, _)| i.instance == "c"));
    }

    #[test]
    fn with_no_partition_count_known_nobody_is_named() {
        let ownership = Ownership::default();
        let registry = Registry::default();
        registry.update("b", Some(info("b", vec![0], vec![], 10)));
        assert!(matches!(
            route("acme", "a", &ownership, &registry, 10),
            Route::Unowned { .. }
        ));
    }
}
