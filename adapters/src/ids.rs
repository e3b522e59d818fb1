//! Random job ids and seeds.

use semantica_core::{IdGen, JobId};

/// Version-4 UUIDs from the operating system's random source.
#[derive(Debug, Default, Clone, Copy)]
pub struct UuidIds;

impl IdGen for UuidIds {
    fn next_id(&mut self) -> JobId {
        JobId::from_u128(uuid::Uuid::new_v4().as_u128())
    }
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
    fn uuid_ids_are_distinct_version_4_uuids() {
        let mut ids = UuidIds;
        let drawn: BTreeSet<JobId> = (0..1000).map(|_| ids.next_id()).collect();
        assert_eq!(drawn.len(), 1000);
        for id in drawn {
            let uuid = uuid::Uuid::from_u128(id.as_u128());
            assert_eq!(uuid.get_version_num(), 4);
            assert_eq!(id.to_string().parse::<JobId>(), Ok(id));
        }
    }

    #[test]
    fn random_seeds_differ() {
        assert_ne!(random_seed(), random_seed());
    }
}
