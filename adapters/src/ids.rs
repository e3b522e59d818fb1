//! Job ids and random seeds.

use semantica_core::{IdGen, JobId};

/// Version-7 UUIDs (RFC 9562): 48 bits of Unix time in milliseconds, then a counter and
/// random bits, increasing within the process. Ids that grow with time keep the stores'
/// id indexes in insertion order: a new job's id lands on the index's last page, which
/// the transaction writes anyway, instead of on a random page of an index that outgrows
/// the page cache (a batch of 1,000 random ids dirtied about one page per job).
#[derive(Debug, Default, Clone, Copy)]
pub struct UuidIds;

impl IdGen for UuidIds {
    fn next_id(&mut self) -> JobId {
        JobId::from_u128(uuid::Uuid::now_v7().as_u128())
    }
}

/// 16 bytes from the operating system's random source (a v4 UUID's 122 random bits and
/// its 6 fixed ones), for secrets. Never from [`UuidIds`]: a v7 id starts with the time.
pub fn random_bytes() -> [u8; 16] {
    uuid::Uuid::new_v4().as_u128().to_le_bytes()
}

/// A seed for core's `SplitMix64` (back-off jitter) from the operating system's random
/// source. The daemon logs it, so a run's jitter can be reproduced.
pub fn random_seed() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn uuid_ids_are_increasing_version_7_uuids() {
        let mut ids = UuidIds;
        let drawn: Vec<JobId> = (0..10_000).map(|_| ids.next_id()).collect();
        // Strictly increasing, also within one millisecond, and so distinct.
        assert!(drawn.windows(2).all(|pair| pair[0] < pair[1]), "ids out of order");
        assert_eq!(drawn.iter().collect::<BTreeSet<_>>().len(), drawn.len());
        for id in drawn {
            let uuid = uuid::Uuid::from_u128(id.as_u128());
            assert_eq!(uuid.get_version_num(), 7);
            assert_eq!(id.to_string().parse::<JobId>(), Ok(id));
        }
    }

    #[test]
    fn random_bytes_are_version_4_uuids() {
        let drawn: BTreeSet<[u8; 16]> = (0..1000).map(|_| random_bytes()).collect();
        assert_eq!(drawn.len(), 1000);
        for bytes in drawn {
            assert_eq!(uuid::Uuid::from_u128(u128::from_le_bytes(bytes)).get_version_num(), 4);
        }
    }

    #[test]
    fn random_seeds_differ() {
        assert_ne!(random_seed(), random_seed());
    }
}
