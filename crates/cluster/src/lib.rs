//! Several instances on one Kafka consumer group: which partition a
//! workspace's events are in, which partitions this instance holds and
//! whether their state is complete, what the other instances say they
//! hold, and so where a read of a workspace goes. No I/O: the Kafka side
//! (publishing and reading `P.instances`) and the HTTP side (forwarding)
//! are adapters around it.

mod ownership;
mod partitioner;
mod registry;
mod route;

pub use ownership::{Ownership, PartitionState};
pub use partitioner::partition_of;
pub use registry::{InstanceInfo, Registry, CLAIM_LIFETIME_MS};
pub use route::{route, Route};
