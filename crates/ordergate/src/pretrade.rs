//! Pre-trade controls on the server: the limits file (`--limits-file`), re-read on
//! SIGHUP, and one rate bucket (GCRA, `governor`) per tenant and process.
//!
//! What the limits mean and in which order they refuse is the core's
//! ([`ordergate_core::controls`]); this module only reads the file and keeps the
//! buckets, the one piece of state a control needs.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use ordergate_core::{LimitsError, PreTradeLimits, TenantLimits};

/// Why a limits file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PreTradeError {
    #[error("cannot read the limits file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("limits file {path}: {source}")]
    Invalid { path: PathBuf, source: LimitsError },
}

/// The limits in force and their rate buckets; replaced whole on a reload.
pub struct PreTrade {
    path: PathBuf,
    current: RwLock<Arc<InForce>>,
    clock: DefaultClock,
}

struct InForce {
    limits: PreTradeLimits,
    rates: Rates,
}

/// A bucket for each tenant with a section that has a rate, and one keyed bucket
/// for every other tenant, at the default section's rate.
#[derive(Default)]
struct Rates {
    tenants: HashMap<String, Bucket>,
    others: Option<Arc<Keyed>>,
}

struct Bucket {
    per_second: NonZeroU32,
    limiter: Arc<DefaultDirectRateLimiter>,
}

struct Keyed {
    per_second: NonZeroU32,
    limiter: DefaultKeyedRateLimiter<String>,
}

/// `n` orders a second, in bursts of up to `n`.
fn quota(per_second: NonZeroU32) -> Quota {
    Quota::per_second(per_second).allow_burst(per_second)
}

impl PreTrade {
    /// Reads the file; at start-up a file that cannot be used is an error.
    pub fn load(path: &Path) -> Result<Self, PreTradeError> {
        let limits = read(path)?;
        let rates = Rates::for_limits(&limits, &Rates::default());
        Ok(Self {
            path: path.to_owned(),
            current: RwLock::new(Arc::new(InForce { limits, rates })),
            clock: DefaultClock::default(),
        })
    }

    /// Reads the file again. A file that cannot be used keeps the limits in force.
    /// A tenant whose rate is unchanged keeps its bucket, so a reload grants no burst.
    pub fn reload(&self) -> Result<usize, PreTradeError> {
        let limits = read(&self.path)?;
        let in_force = self.in_force();
        let rates = Rates::for_limits(&limits, &in_force.rates);
        let sections = limits.tenants().count();
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = Arc::new(InForce { limits, rates });
        Ok(sections)
    }

    /// The tenant's limits now.
    pub fn limits_for(&self, tenant: &str) -> Arc<TenantLimits> {
        self.in_force().limits.for_tenant(tenant).clone()
    }

    /// Takes one new order from the tenant's bucket: `None` if taken, else the whole
    /// seconds (at least 1) until one could be.
    pub fn take(&self, tenant: &str) -> Option<u32> {
        let in_force = self.in_force();
        let refused = match in_force.rates.tenants.get(tenant) {
            Some(bucket) => bucket.limiter.check().err(),
            None => in_force
                .rates
                .others
                .as_ref()
                .and_then(|keyed| keyed.limiter.check_key(&tenant.to_owned()).err()),
        }?;
        let wait = refused.wait_time_from(self.clock.now());
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Some(u32::try_from(seconds).unwrap_or(u32::MAX).max(1))
    }

    fn in_force(&self) -> Arc<InForce> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Rates {
    fn for_limits(limits: &PreTradeLimits, old: &Rates) -> Rates {
        let tenants = limits
            .tenants()
            .filter_map(|(name, tenant)| {
                let per_second = tenant.orders_per_second?;
                let kept = old.tenants.get(name).filter(|b| b.per_second == per_second);
                let limiter = kept.map_or_else(
                    || Arc::new(RateLimiter::direct(quota(per_second))),
                    |bucket| bucket.limiter.clone(),
                );
                Some((
                    name.to_owned(),
                    Bucket {
                        per_second,
                        limiter,
                    },
                ))
            })
            .collect();
        let others = limits.default_limits().orders_per_second.map(|per_second| {
            match old.others.as_ref().filter(|k| k.per_second == per_second) {
                Some(kept) => kept.clone(),
                None => Arc::new(Keyed {
                    per_second,
                    limiter: RateLimiter::keyed(quota(per_second)),
                }),
            }
        });
        Rates { tenants, others }
    }
}

fn read(path: &Path) -> Result<PreTradeLimits, PreTradeError> {
    let text = std::fs::read_to_string(path).map_err(|source| PreTradeError::Read {
        path: path.to_owned(),
        source,
    })?;
    PreTradeLimits::parse(&text).map_err(|source| PreTradeError::Invalid {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), text).expect("write");
        file
    }

    #[test]
    fn each_tenant_has_a_bucket_of_its_own_and_a_refusal_says_when_to_retry() {
        let limits = file("[default]\norders_per_second = 2\n[tenant.a]\norders_per_second = 1");
        let pretrade = PreTrade::load(limits.path()).expect("limits");
        assert_eq!(pretrade.take("a"), None);
        assert_eq!(pretrade.take("a"), Some(1));
        assert_eq!((pretrade.take("b"), pretrade.take("b")), (None, None));
        assert_eq!(pretrade.take("b"), Some(1));
        assert_eq!(pretrade.take("c"), None, "another tenant, another bucket");
    }

    #[test]
    fn a_reload_keeps_an_unchanged_bucket_and_a_bad_file_keeps_the_limits() {
        let limits = file("[tenant.a]\norders_per_second = 1\nmax_quantity = 5");
        let pretrade = PreTrade::load(limits.path()).expect("limits");
        assert_eq!(pretrade.take("a"), None);
        std::fs::write(
            limits.path(),
            "[tenant.a]\norders_per_second = 1\nmax_quantity = 6",
        )
        .expect("write");
        assert_eq!(pretrade.reload().expect("reload"), 1);
        assert_eq!(pretrade.take("a"), Some(1), "the bucket was kept");
        assert_eq!(pretrade.limits_for("a").max_quantity, Some(6));
        std::fs::write(limits.path(), "[tenant.a]\nmax_quantty = 1").expect("write");
        assert!(pretrade.reload().is_err());
        assert_eq!(pretrade.limits_for("a").max_quantity, Some(6));
    }

    #[test]
    fn a_file_that_cannot_be_used_is_an_error_at_start_up() {
        let broken = file("[default]\nhalted = maybe");
        assert!(matches!(
            PreTrade::load(broken.path()),
            Err(PreTradeError::Invalid { .. })
        ));
        assert!(matches!(
            PreTrade::load(Path::new("/nonexistent/limits.toml")),
            Err(PreTradeError::Read { .. })
        ));
    }
}
