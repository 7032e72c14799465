//! Keys this process is placing right now.
//!
//! A second request for a key that is being placed waits for the first instead of
//! racing it: the claim holds a watch sender, and waiters see the channel close when
//! the claim ends, however it ends (success, failure, panic).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

type Slot = (String, String);

/// The registry of in-flight keys.
#[derive(Debug, Default, Clone)]
pub struct InFlight {
    keys: Arc<Mutex<HashMap<Slot, watch::Receiver<()>>>>,
}

/// Held while this request owns its key; dropping it frees the key and wakes waiters.
#[derive(Debug)]
pub struct Claim {
    registry: InFlight,
    slot: Slot,
    _done: watch::Sender<()>,
}

/// Resolves when the claim it was taken from ends.
#[derive(Debug)]
pub struct Finished(watch::Receiver<()>);

impl InFlight {
    /// Takes the key, or returns a handle to wait for whoever has it.
    pub fn claim(&self, tenant: &str, key: &str) -> Result<Claim, Finished> {
        let slot = (tenant.to_owned(), key.to_owned());
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = keys.get(&slot) {
            return Err(Finished(existing.clone()));
        }
        let (done, watcher) = watch::channel(());
        keys.insert(slot.clone(), watcher);
        Ok(Claim {
            registry: self.clone(),
            slot,
            _done: done,
        })
    }

    /// How many keys are in flight (for tests and metrics).
    pub fn len(&self) -> usize {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut keys = self
            .registry
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        keys.remove(&self.slot);
    }
}

impl Finished {
    /// Waits until the claim ends.
    pub async fn wait(mut self) {
        // `changed` errs once the sender is dropped, which is the only signal used.
        while self.0.changed().await.is_ok() {}
    }
}
