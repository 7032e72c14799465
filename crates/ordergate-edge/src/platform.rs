//! Runtime calls that workers-rs does not wrap.

use wasm_bindgen::prelude::*;
use worker::{State, js_sys};

#[wasm_bindgen]
extern "C" {
    /// `ctx.storage` of a SQLite-backed Durable Object.
    type SyncStorage;

    /// Runs the callback inside one SQLite transaction: committed when it returns,
    /// rolled back entirely when it throws.
    #[wasm_bindgen(method, catch, js_name = transactionSync)]
    fn transaction_sync(
        this: &SyncStorage,
        callback: &mut dyn FnMut() -> Result<JsValue, JsValue>,
    ) -> Result<JsValue, JsValue>;

    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buffer: &mut [u8]);
}

/// Runs `work` as one transaction of the object's storage: all its writes commit
/// together or none does (an `Err` rolls them back).
pub fn atomically<T>(state: &State, work: impl FnOnce() -> worker::Result<T>) -> worker::Result<T> {
    let storage = state.storage();
    let storage: &SyncStorage = storage.as_raw().unchecked_ref();
    let mut work = Some(work);
    let mut output = None;
    let mut failure = None;
    let mut callback = || -> Result<JsValue, JsValue> {
        let Some(work) = work.take() else {
            return Err(JsValue::from_str("the transaction ran twice"));
        };
        match work() {
            Ok(value) => {
                output = Some(value);
                Ok(JsValue::UNDEFINED)
            }
            Err(e) => {
                let message = e.to_string();
                failure = Some(e);
                Err(JsValue::from_str(&message))
            }
        }
    };
    let committed = storage.transaction_sync(&mut callback);
    match (committed, output, failure) {
        (_, _, Some(e)) => Err(e),
        (Ok(_), Some(value), None) => Ok(value),
        (Err(e), _, None) => Err(worker::Error::from(e)),
        (Ok(_), None, None) => Err(worker::Error::from("the transaction did not run")),
    }
}

/// Cryptographically random bytes from the runtime.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    get_random_values(&mut bytes);
    bytes
}

/// The runtime's clock, in milliseconds since the Unix epoch. Inside a Durable
/// Object this is the object's clock, which the contract makes the database clock.
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}
