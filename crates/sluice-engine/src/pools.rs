//! Pools: named sets of slots that tasks of every run in this process share (a database that
//! takes four connections, an API with a rate limit). A task that names a pool starts only
//! when one of its slots is free, and gives the slot back when its try ends.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Default)]
pub struct Pools {
    slots: HashMap<String, Arc<Semaphore>>,
}

/// A slot held by a running try (none for tasks outside pools).
pub type Slot = Option<OwnedSemaphorePermit>;

impl Pools {
    pub fn new(config: &BTreeMap<String, u32>) -> Pools {
        Pools {
            slots: config
                .iter()
                .map(|(name, n)| (name.clone(), Arc::new(Semaphore::new(*n as usize))))
                .collect(),
        }
    }

    /// A slot of `pool` if one is free now; `Some(None)` for a task without a pool (or one
    /// this process does not know, which `sluice check` reports).
    pub fn try_take(&self, pool: Option<&str>) -> Option<Slot> {
        match pool.and_then(|name| self.slots.get(name)) {
            None => Some(None),
            Some(semaphore) => semaphore.clone().try_acquire_owned().ok().map(Some),
        }
    }
}
