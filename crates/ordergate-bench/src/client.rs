//! A minimal keep-alive HTTP/1.1 client on hyper, one connection per worker.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where to send requests, and as whom.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
    pub token: Option<String>,
}

impl Target {
    pub fn parse(url: &str, token: Option<String>) -> anyhow::Result<Self> {
        let uri: hyper::Uri = url.parse().context("--url is not a URL")?;
        if uri.scheme_str() != Some("http") {
            return Err(anyhow!("--url must be http://HOST:PORT"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(anyhow!(
                "--url is the gateway's base URL, http://HOST:PORT, without a path (not {url})"
            ));
        }
        let authority = uri.authority().context("--url needs a host")?;
        let port = authority.port_u16().unwrap_or(80);
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .context("cannot resolve --url")?
            .next()
            .context("--url resolves to no address")?;
        Ok(Self {
            addr,
            host: authority.to_string(),
            token,
        })
    }
}

/// One HTTP response as the bench reads it: status, whether it was a replay, and
/// the body.
pub struct Reply {
    pub status: StatusCode,
    pub replay: bool,
    pub body: Bytes,
}

/// A connection that reconnects when it is lost or abandoned after a timeout.
pub struct Client {
    target: Target,
    timeout: Duration,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    pub fn new(target: Target, timeout: Duration) -> Self {
        Self {
            target,
            timeout,
            sender: None,
        }
    }

    /// The patient timeout this client was made with.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POST /orders; `Ok(None)` when no answer came within `timeout` (the request
    /// may or may not have been placed: the caller retries with the same key).
    pub async fn post(
        &mut self,
        key: &str,
        body: &'static str,
        timeout: Duration,
    ) -> anyhow::Result<Option<Reply>> {
        let request = self
            .request(Method::POST, "/orders")
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Full::new(Bytes::from_static(body.as_bytes())))?;
        self.send(request, timeout).await
    }

    /// GET /orders?idempotencyKey=K (the key is URL-safe by construction).
    pub async fn get_by_key(&mut self, key: &str) -> anyhow::Result<Option<Reply>> {
        let path = format!("/orders?idempotencyKey={key}");
        let request = self.request(Method::GET, &path).body(Full::default())?;
        self.send(request, self.timeout).await
    }

    fn request(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.target.host);
        if let Some(token) = &self.target.token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder
    }

    async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> anyhow::Result<Option<Reply>> {
        let sender = self.connected().await?;
        let exchange = async {
            // A keep-alive connection takes its next request only once it is ready.
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let replay = response.headers().contains_key("idempotent-replay");
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>(Reply {
                status,
                replay,
                body,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(answer)) => Ok(Some(answer)),
            // A lost connection is like a timeout: the outcome is unknown.
            Ok(Err(_)) | Err(_) => {
                self.sender = None;
                Ok(None)
            }
        }
    }

    async fn connected(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(self.target.addr)
                .await
                .with_context(|| format!("cannot connect to {}", self.target.addr))?;
            stream.set_nodelay(true)?;
            let (sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        self.sender.as_mut().context("no connection")
    }
}
