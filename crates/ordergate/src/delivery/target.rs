//! Where accepted orders go (`--deliver`), and the webhook's signing key
//! (`--deliver-secret`), each parsed once, by clap, into what the sinks use.

use std::fmt;

use ordergate_core::delivery::webhook_key;

/// Where accepted orders go, from the URL scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// NATS JetStream: the server and the subject prefix.
    Nats { server: String, subject: String },
    /// A webhook endpoint.
    Webhook(String),
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
        Err("the delivery URL must start with nats:// or http(s)://".into())
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
