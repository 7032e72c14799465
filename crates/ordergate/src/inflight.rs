//! Keys this process is placing right now.
//!
//! A second request for a key that is being placed waits for the first instead of
//! racing it: the claim holds a watch sender, and waiters see the channel close when
//! the claim ends, however it ends (success, failure, panic).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use ordergate_core::ScopedKey;
use tokio::sync::watch;

/// The registry of in-flight keys.
#[derive(Debug, Default, Clone)]
pub struct InFlight {
    keys: Arc<Mutex<HashMap<ScopedKey, watch::Receiver<()>>>>,
}

/// Held while this request owns its key; dropping it frees the key and wakes waiters.
#[derive(Debug)]
pub struct Claim {
    registry: InFlight,
    key: ScopedKey,
    _done: watch::Sender<()>,
}

/// A handle on someone else's claim: [`Release::wait`] resolves when it ends.
#[derive(Debug)]
pub struct Release(watch::Receiver<()>);

impl InFlight {
    /// Takes the key, or returns a handle to wait for whoever has it.
    pub fn claim(&self, key: &ScopedKey) -> Result<Claim, Release> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = keys.get(key) {
            return Err(Release(existing.clone()));
        }
        let (done, watcher) = watch::channel(());
        keys.insert(key.clone(), watcher);
        Ok(Claim {
            registry: self.clone(),
            key: key.clone(),
            _done: done,
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut keys = self
            .registry
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        keys.remove(&self.key);
    }
}

impl Release {
    /// Waits until the claim ends.
    pub async fn wait(mut self) {
        // `changed` errs once the sender is dropped, which is the only signal used.
        while self.0.changed().await.is_ok() {}
    }
}
