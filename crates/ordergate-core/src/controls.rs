//! Pre-trade controls: the limits file, each tenant's limits, and the checks a new
//! order must pass before it is placed, in the contract's order (halt, symbols,
//! quantity, notional, then the rate).
//!
//! The rate is the one stateful control: its bucket lives in the driver (the server
//! keeps one per tenant and process); the core only says what the rate is and how a
//! refusal by it is answered. Everything else is decided here, for both builds.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;

use serde::Deserialize;

use crate::order::{OrderRequest, OrderType, Symbol};
use crate::price::{Notional, NotionalLimit};
use crate::problem::ErrorCode;

/// Why a new order is refused by a control. `Display` is the problem's `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlRefusal {
    #[error("trading is halted for this tenant: no new orders are taken")]
    Halted,
    #[error("symbol {0:?} is not in this tenant's allowed symbols")]
    SymbolNotAllowed(String),
    #[error("quantity {quantity} is above this tenant's max_quantity of {limit}")]
    QuantityAbove { quantity: u64, limit: u64 },
    #[error("notional {notional} is above this tenant's max_notional of {limit}")]
    NotionalAbove { notional: Notional, limit: String },
    #[error("more than {per_second} new orders a second for this tenant: retry later")]
    RateLimited {
        per_second: u32,
        retry_after_seconds: u32,
    },
}

impl ControlRefusal {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Halted => ErrorCode::TradingHalted,
            Self::SymbolNotAllowed(_) => ErrorCode::SymbolNotAllowed,
            Self::QuantityAbove { .. } | Self::NotionalAbove { .. } => ErrorCode::LimitExceeded,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
        }
    }
}

/// One tenant's limits, its own section's settings over the default section's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantLimits {
    pub halted: bool,
    pub symbols: Option<HashSet<String>>,
    pub max_quantity: Option<u64>,
    pub max_notional: Option<NotionalLimit>,
    pub orders_per_second: Option<NonZeroU32>,
}

impl TenantLimits {
    /// Every control but the rate, in the contract's order.
    pub fn check(&self, order: &OrderRequest) -> Result<(), ControlRefusal> {
        if self.halted {
            return Err(ControlRefusal::Halted);
        }
        let symbol = order.symbol.as_str();
        if self
            .symbols
            .as_ref()
            .is_some_and(|allowed| !allowed.contains(symbol))
        {
            return Err(ControlRefusal::SymbolNotAllowed(symbol.to_owned()));
        }
        let quantity = order.quantity.get();
        if let Some(limit) = self.max_quantity.filter(|&limit| quantity > limit) {
            return Err(ControlRefusal::QuantityAbove { quantity, limit });
        }
        if let (Some(limit), OrderType::Limit(price)) = (&self.max_notional, &order.order_type) {
            let notional = Notional::of(quantity, price);
            if notional > limit.notional() {
                return Err(ControlRefusal::NotionalAbove {
                    notional,
                    limit: limit.as_str().to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// The limits of every tenant, as a limits file states them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreTradeLimits {
    default: Arc<TenantLimits>,
    tenants: HashMap<String, Arc<TenantLimits>>,
}

/// Why a limits file is refused; the old limits stay in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    #[error("the limits file is not valid: {0}")]
    Syntax(String),
    #[error("{section}: {setting} {why}")]
    Setting {
        section: String,
        setting: &'static str,
        why: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    #[serde(default)]
    default: Section,
    #[serde(default)]
    tenant: HashMap<String, Section>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Section {
    halted: Option<bool>,
    symbols: Option<Vec<String>>,
    max_quantity: Option<u64>,
    max_notional: Option<String>,
    orders_per_second: Option<u32>,
}

impl PreTradeLimits {
    /// Parses a limits file (TOML). An unknown setting or section, a value of the
    /// wrong type or out of range is an error: a typo must not lift a limit.
    pub fn parse(text: &str) -> Result<Self, LimitsError> {
        let file: LimitsFile =
            toml::from_str(text).map_err(|e| LimitsError::Syntax(e.to_string()))?;
        let default = file.default.over_limits(&Section::default(), "[default]")?;
        let tenants = file
            .tenant
            .iter()
            .map(|(name, section)| {
                let limits = section.over_limits(&file.default, &format!("[tenant.{name}]"))?;
                Ok((name.clone(), Arc::new(limits)))
            })
            .collect::<Result<_, LimitsError>>()?;
        Ok(Self {
            default: Arc::new(default),
            tenants,
        })
    }

    /// The tenant's limits: its own section over the default one.
    pub fn for_tenant(&self, tenant: &str) -> &Arc<TenantLimits> {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }

    /// The limits of the default section, for every tenant without one of its own.
    pub fn default_limits(&self) -> &Arc<TenantLimits> {
        &self.default
    }

    /// The tenants with a section of their own.
    pub fn tenants(&self) -> impl Iterator<Item = (&str, &Arc<TenantLimits>)> {
        self.tenants
            .iter()
            .map(|(name, limits)| (name.as_str(), limits))
    }

    /// The same limits without any rate, for a build that cannot keep one (the edge);
    /// whether any section set one, so that the build can say it ignores it.
    pub fn without_rates(self) -> (Self, bool) {
        let had_rate = self.default.orders_per_second.is_some()
            || self.tenants.values().any(|l| l.orders_per_second.is_some());
        let strip = |limits: &Arc<TenantLimits>| {
            Arc::new(TenantLimits {
                orders_per_second: None,
                ..TenantLimits::clone(limits)
            })
        };
        let stripped = Self {
            default: strip(&self.default),
            tenants: self
                .tenants
                .iter()
                .map(|(name, limits)| (name.clone(), strip(limits)))
                .collect(),
        };
        (stripped, had_rate)
    }
}

impl Section {
    /// The limits of this section's settings, with `base`'s where it names none.
    fn over_limits(&self, base: &Section, name: &str) -> Result<TenantLimits, LimitsError> {
        let bad = |setting: &'static str, why: &str| LimitsError::Setting {
            section: name.to_owned(),
            setting,
            why: why.to_owned(),
        };
        let symbols = self.symbols.as_ref().or(base.symbols.as_ref());
        let symbols = symbols
            .map(|list| {
                list.iter()
                    .map(|s| Symbol::parse(s).map(|s| s.as_str().to_owned()))
                    .collect::<Result<HashSet<_>, _>>()
                    .map_err(|_| bad("symbols", "must list symbols of 1 to 32 printable ASCII characters without spaces"))
            })
            .transpose()?;
        let max_quantity = self.max_quantity.or(base.max_quantity);
        if max_quantity == Some(0) {
            return Err(bad("max_quantity", "must be at least 1"));
        }
        let max_notional = self
            .max_notional
            .as_ref()
            .or(base.max_notional.as_ref())
            .map(|text| NotionalLimit::parse(text))
            .transpose()
            .map_err(|e| {
                bad(
                    "max_notional",
                    &format!("must be a decimal string that {e}"),
                )
            })?;
        let orders_per_second = match self.orders_per_second.or(base.orders_per_second) {
            None => None,
            Some(n) => Some(
                NonZeroU32::new(n).ok_or_else(|| bad("orders_per_second", "must be at least 1"))?,
            ),
        };
        Ok(TenantLimits {
            halted: self.halted.or(base.halted).unwrap_or(false),
            symbols,
            max_quantity,
            max_notional,
            orders_per_second,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::JsonValue;

    const FILE: &str = r#"
        [default]
        max_quantity = 1_000_000

        [tenant.acme]
        max_quantity = 10_000
        max_notional = "250000.00"
        orders_per_second = 50
        symbols = ["AAPL", "MSFT"]
        halted = false

        [tenant.stopped]
        halted = true
    "#;

    fn order(text: &str) -> OrderRequest {
        OrderRequest::from_json(&JsonValue::parse(text.as_bytes()).expect("JSON")).expect("order")
    }

    #[test]
    fn a_tenant_section_overrides_only_what_it_names() {
        let limits = PreTradeLimits::parse(FILE).expect("limits");
        let acme = limits.for_tenant("acme");
        assert_eq!(acme.max_quantity, Some(10_000));
        assert_eq!(acme.orders_per_second, NonZeroU32::new(50));
        let stopped = limits.for_tenant("stopped");
        assert!(stopped.halted);
        assert_eq!(stopped.max_quantity, Some(1_000_000));
        let other = limits.for_tenant("other");
        assert_eq!((other.halted, other.max_quantity), (false, Some(1_000_000)));
    }

    #[test]
    fn the_controls_answer_in_the_contracts_order() {
        let limits = PreTradeLimits::parse(FILE).expect("limits");
        let acme = limits.for_tenant("acme");
        let check = |text: &str| acme.check(&order(text));
        assert_eq!(
            check(r#"{"symbol":"AAPL","side":"buy","quantity":10000}"#),
            Ok(())
        );
        assert_eq!(
            check(r#"{"symbol":"TSLA","side":"buy","quantity":20000}"#),
            Err(ControlRefusal::SymbolNotAllowed("TSLA".into()))
        );
        assert_eq!(
            check(
                r#"{"symbol":"AAPL","side":"buy","quantity":10001,"type":"limit","limitPrice":"1000"}"#
            ),
            Err(ControlRefusal::QuantityAbove {
                quantity: 10_001,
                limit: 10_000
            })
        );
        let at_limit = r#"{"symbol":"AAPL","side":"buy","quantity":2500,"type":"limit","limitPrice":"100.00"}"#;
        assert_eq!(check(at_limit), Ok(()));
        let above = r#"{"symbol":"AAPL","side":"buy","quantity":2500,"type":"limit","limitPrice":"100.00000001"}"#;
        let refusal = check(above).expect_err("above the notional");
        assert_eq!(
            refusal.to_string(),
            "notional 250000.000025 is above this tenant's max_notional of 250000.00"
        );
        let halted = limits.for_tenant("stopped");
        assert_eq!(
            halted.check(&order(r#"{"symbol":"X","side":"buy","quantity":1}"#)),
            Err(ControlRefusal::Halted)
        );
    }

    #[test]
    fn a_market_order_has_no_notional_to_check() {
        let limits = PreTradeLimits::parse("[default]\nmax_notional = \"1\"").expect("limits");
        let market = order(r#"{"symbol":"A","side":"buy","quantity":1000000}"#);
        assert_eq!(limits.for_tenant("t").check(&market), Ok(()));
    }

    #[test]
    fn a_file_with_a_typo_or_a_bad_value_is_refused() {
        for bad in [
            "[default]\nmax_qty = 1",
            "[defaults]\nhalted = true",
            "[default]\nhalted = \"yes\"",
            "[default]\nmax_quantity = -1",
            "[default]\nmax_quantity = 0",
            "[default]\nmax_notional = 250000.0",
            "[default]\nmax_notional = \"1e6\"",
            "[default]\norders_per_second = 0",
            "[tenant.a]\nsymbols = [\"A B\"]",
            "[tenant.a]\nhalted = true\nhalted = false",
            "not toml",
        ] {
            assert!(PreTradeLimits::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(PreTradeLimits::parse(""), Ok(PreTradeLimits::default()));
    }

    #[test]
    fn without_rates_keeps_every_other_control_and_says_a_rate_was_set() {
        let (limits, had_rate) = PreTradeLimits::parse(FILE).expect("limits").without_rates();
        assert!(had_rate);
        let acme = limits.for_tenant("acme");
        assert_eq!(
            (acme.orders_per_second, acme.max_quantity),
            (None, Some(10_000))
        );
    }
}
