//! Where accepted orders go (`--deliver`), and the webhook's signing key
//! (`--deliver-secret`), each parsed once, by clap, into what the sinks use.

use std::fmt;
use std::time::Duration;

use ordergate_core::delivery::webhook_key;
use ordergate_core::fix::SessionId;

/// Where accepted orders go, from the URL scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// NATS JetStream: the server and the subject prefix.
    Nats { server: String, subject: String },
    /// A webhook endpoint.
    Webhook(String),
    /// A FIX 4.4 acceptor, and the session to it.
    Fix(Box<FixTarget>),
}

/// `fix://HOST:PORT?sender=SENDER&target=TARGET[&heartbeat=SECONDS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixTarget {
    /// `HOST:PORT`.
    pub address: String,
    pub session: SessionId,
    pub heartbeat: Duration,
}

/// The heartbeat interval without `heartbeat=`.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);

impl FixTarget {
    fn parse(rest: &str) -> Result<Self, String> {
        const SHAPE: &str =
            "a FIX sink is fix://HOST:PORT?sender=SENDER&target=TARGET[&heartbeat=SECONDS]";
        let (address, query) = rest.split_once('?').ok_or(SHAPE)?;
        if !address.contains(':') || address.contains('/') {
            return Err(SHAPE.into());
        }
        let (mut sender, mut target, mut heartbeat) = (None, None, DEFAULT_HEARTBEAT);
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').ok_or(SHAPE)?;
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| format!("{name} is not UTF-8"))?
                .into_owned();
            match name {
                "sender" => sender = Some(comp_id(name, value)?),
                "target" => target = Some(comp_id(name, value)?),
                "heartbeat" => heartbeat = heartbeat_interval(&value)?,
                other => return Err(format!("unknown FIX sink parameter {other:?}; {SHAPE}")),
            }
        }
        Ok(Self {
            address: address.to_owned(),
            session: SessionId {
                sender: sender.ok_or(SHAPE)?,
                target: target.ok_or(SHAPE)?,
            },
            heartbeat,
        })
    }
}

/// A CompID: 1 to 64 printable ASCII characters.
fn comp_id(name: &str, value: String) -> Result<String, String> {
    let valid =
        !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(value)
    } else {
        Err(format!("{name} must be 1 to 64 printable ASCII characters"))
    }
}

fn heartbeat_interval(value: &str) -> Result<Duration, String> {
    match value.parse::<u64>() {
        Ok(seconds @ 1..=3600) => Ok(Duration::from_secs(seconds)),
        _ => Err("heartbeat is a whole number of seconds from 1 to 3600".into()),
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("nats://") {
            let (server, subject) = rest
                .split_once('/')
                .filter(|(host, subject)| !host.is_empty() && !subject.is_empty())
                .ok_or("a NATS sink is nats://HOST:PORT/SUBJECT")?;
            let valid = subject.split('.').all(|token| {
                !token.is_empty()
                    && token
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>')
            });
            if !valid {
                return Err(format!(
                    "{subject:?} is not a NATS subject prefix (tokens separated by dots, no wildcards)"
                ));
            }
            return Ok(Self::Nats {
                server: format!("nats://{server}"),
                subject: subject.to_owned(),
            });
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(Self::Webhook(s.to_owned()));
        }
        if let Some(rest) = s.strip_prefix("fix://") {
            return FixTarget::parse(rest).map(|fix| Self::Fix(Box::new(fix)));
        }
        Err("the delivery URL must start with nats://, http(s):// or fix://".into())
    }
}

/// A webhook's signing key, from `whsec_<base64>`; never printed.
#[derive(Clone)]
pub struct WebhookKey(pub Vec<u8>);

impl std::str::FromStr for WebhookKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        webhook_key(s).map(Self).map_err(|e| e.to_string())
    }
}

impl fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fix_target_names_the_acceptor_and_the_session() {
        let target: Target = "fix://127.0.0.1:9878?sender=OG&target=OMS%2D1&heartbeat=5"
            .parse()
            .expect("valid");
        let Target::Fix(fix) = target else {
            panic!("not a FIX target: {target:?}");
        };
        assert_eq!(fix.address, "127.0.0.1:9878");
        assert_eq!(fix.session.sender, "OG");
        assert_eq!(fix.session.target, "OMS-1");
        assert_eq!(fix.heartbeat, Duration::from_secs(5));
        assert!(
            "fix://h:1?sender=OG&target=OMS%201"
                .parse::<Target>()
                .is_err()
        );
        for bad in [
            "fix://h:1",
            "fix://h:1?sender=OG",
            "fix://h?sender=OG&target=T",
            "fix://h:1?sender=OG&target=T&heartbeat=0",
            "fix://h:1?sender=OG&target=T&reset=Y",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
        let Ok(Target::Fix(fix)) = "fix://h:1?target=T&sender=S".parse::<Target>() else {
            panic!("valid");
        };
        assert_eq!(fix.heartbeat, DEFAULT_HEARTBEAT);
    }
}
