//! Limit prices and notionals as exact decimals: a price is kept as the client wrote
//! it (receipts and FIX messages repeat it byte for byte) and as an integer count of
//! hundred-millionths, so no arithmetic on it ever goes through a float.

use std::fmt;

/// Digits after the point a price may carry, and the scale of [`Price::units`].
pub const FRACTION_DIGITS: usize = 8;
/// Digits before the point a price may carry.
pub const INTEGER_DIGITS: usize = 12;
const SCALE: u128 = 100_000_000;

/// Why a string is not a price in the contract's grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("must have 1 to 12 digits before the point (a notional limit up to 30)")]
    IntegerDigits,
    #[error("must not start with a zero unless the zero stands alone before the point")]
    LeadingZero,
    #[error("must have 1 to 8 digits after the point")]
    FractionDigits,
    #[error("must hold only digits and one point")]
    NotDigits,
    #[error("must be greater than zero")]
    NotPositive,
}

/// A positive decimal price, as written and as an exact count of 10⁻⁸ units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    text: String,
    units: u128,
}

impl Price {
    /// Parses the contract's grammar: 1–12 digits without leading zeros (a lone `0`
    /// allowed), optionally `.` and 1–8 digits; no sign, exponent or spaces; not zero.
    pub fn parse(text: &str) -> Result<Price, PriceError> {
        Ok(Price {
            text: text.to_owned(),
            units: positive_units(text, INTEGER_DIGITS)?,
        })
    }

    /// The price exactly as the client wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The price in 10⁻⁸ units: `"101.25"` is 10 125 000 000.
    pub fn units(&self) -> u128 {
        self.units
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A positive decimal in the price grammar with up to `integer_digits` before the
/// point, in 10⁻⁸ units.
fn positive_units(text: &str, integer_digits: usize) -> Result<u128, PriceError> {
    let (integer, fraction) = match text.split_once('.') {
        Some((integer, fraction)) => (integer, Some(fraction)),
        None => (text, None),
    };
    let integer_units = integer_part(integer, integer_digits)?;
    let fraction_units = fraction.map_or(Ok(0), fraction_part)?;
    let units = integer_units * SCALE + fraction_units;
    if units == 0 {
        return Err(PriceError::NotPositive);
    }
    Ok(units)
}

fn all_digits(part: &str) -> Result<u128, PriceError> {
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PriceError::NotDigits);
    }
    part.bytes()
        .try_fold(0u128, |acc, b| {
            acc.checked_mul(10)?.checked_add(u128::from(b - b'0'))
        })
        .ok_or(PriceError::NotDigits)
}

fn integer_part(integer: &str, max_digits: usize) -> Result<u128, PriceError> {
    let value = all_digits(integer)?;
    if integer.is_empty() || integer.len() > max_digits {
        return Err(PriceError::IntegerDigits);
    }
    if integer.len() > 1 && integer.starts_with('0') {
        return Err(PriceError::LeadingZero);
    }
    Ok(value)
}

fn fraction_part(fraction: &str) -> Result<u128, PriceError> {
    let value = all_digits(fraction)?;
    if fraction.is_empty() || fraction.len() > FRACTION_DIGITS {
        return Err(PriceError::FractionDigits);
    }
    let missing = FRACTION_DIGITS - fraction.len();
    Ok(value * 10u128.pow(missing as u32))
}

/// Quantity × price, exact: at most 2⁵³ × 10²⁰ units, well inside a `u128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Notional {
    units: u128,
}

impl Notional {
    pub fn of(quantity: u64, price: &Price) -> Notional {
        Notional {
            units: u128::from(quantity) * price.units,
        }
    }

    /// The notional in 10⁻⁸ units.
    pub fn units(&self) -> u128 {
        self.units
    }
}

/// Digits before the point a notional limit may carry: more than any notional has.
const LIMIT_INTEGER_DIGITS: usize = 30;

/// A `max_notional`: a positive decimal in the price grammar with up to 30 digits
/// before the point, kept as written for the refusal's detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotionalLimit {
    text: String,
    limit: Notional,
}

impl NotionalLimit {
    pub fn parse(text: &str) -> Result<NotionalLimit, PriceError> {
        let units = positive_units(text, LIMIT_INTEGER_DIGITS)?;
        Ok(NotionalLimit {
            text: text.to_owned(),
            limit: Notional { units },
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn notional(&self) -> Notional {
        self.limit
    }
}

/// The shortest exact decimal: no trailing zeros after the point, no lone point.
impl fmt::Display for Notional {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let integer = self.units / SCALE;
        let fraction = self.units % SCALE;
        if fraction == 0 {
            return write!(f, "{integer}");
        }
        let digits = format!("{fraction:0width$}", width = FRACTION_DIGITS);
        write!(f, "{integer}.{}", digits.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contracts_examples_parse_exactly() {
        let units = |s| Price::parse(s).map(|p| p.units());
        assert_eq!(units("101.25"), Ok(10_125_000_000));
        assert_eq!(units("0.5"), Ok(50_000_000));
        assert_eq!(units("7"), Ok(700_000_000));
        assert_eq!(units("0.00000001"), Ok(1));
        assert_eq!(
            units("999999999999.99999999"),
            Ok(99_999_999_999_999_999_999)
        );
    }

    #[test]
    fn a_price_keeps_the_text_it_was_written_as() {
        let price = Price::parse("101.10").expect("price");
        assert_eq!(price.as_str(), "101.10");
        assert_eq!(price.units(), Price::parse("101.1").expect("price").units());
    }

    #[test]
    fn the_contracts_counterexamples_are_refused_with_their_reason() {
        use PriceError::*;
        let cases = [
            ("07", LeadingZero),
            ("00.5", LeadingZero),
            ("1e2", NotDigits),
            ("-1", NotDigits),
            ("+1", NotDigits),
            (" 1", NotDigits),
            ("1 ", NotDigits),
            ("1.2.3", NotDigits),
            ("0", NotPositive),
            ("0.00", NotPositive),
            ("", IntegerDigits),
            (".5", IntegerDigits),
            ("1.", FractionDigits),
            ("1.123456789", FractionDigits),
            ("1234567890123", IntegerDigits),
            ("١", NotDigits),
        ];
        for (text, reason) in cases {
            assert_eq!(Price::parse(text), Err(reason), "{text:?}");
        }
    }

    #[test]
    fn a_notional_is_exact_at_the_largest_terms() {
        let price = Price::parse("999999999999.99999999").expect("price");
        let notional = Notional::of(9_007_199_254_740_991, &price);
        assert_eq!(
            notional.to_string(),
            "9007199254740990999909928007.45259009"
        );
    }
}
