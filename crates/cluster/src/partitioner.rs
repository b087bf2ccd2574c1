//! The partition a workspace's events go to: the key is the workspace id,
//! and librdkafka's default partitioner (`consistent_random`) puts a keyed
//! record in CRC-32(key) mod the partition count. idfold's writers use that
//! default, so this is where every workspace lives.

/// The partition of `workspace` in a topic of `partitions` partitions.
pub fn partition_of(workspace: &str, partitions: u32) -> u32 {
    crc32fast::hash(workspace.as_bytes()) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_crc32_of_the_key_modulo_the_partition_count() {
        // zlib's CRC-32: "acme" -> 96778814, "ws-0" -> 2280192883.
        assert_eq!(partition_of("acme", 6), 96_778_814 % 6);
        assert_eq!(partition_of("ws-0", 6), (2_280_192_883u64 % 6) as u32);
        assert_eq!(partition_of("anything", 0), 0, "no partitions: no panic");
    }
}
