//! The Worker's `fetch`: routes, the HTTP checks in the contract's order (404/405 →
//! 401 → 415 → 413 → 400), then the object that owns the key or the order.

use futures_util::StreamExt;
use ordergate_core::intake::{self, DISCARD_LIMIT, Tenancy};
use ordergate_core::{Answer, IdempotencyKey, Refusal, ScopedKey};
use uuid::Uuid;
use worker::{ByteStream, Env, Headers, Method, Request, RequestInit, Response, event, js_sys};

use crate::config::{self, Access, Config};
use crate::legacy;
use crate::platform::now_ms;
use crate::replays;
use crate::respond;
use crate::shard;
use crate::wire::{self, Command};

/// The Durable Object namespace of the key shards.
const SHARDS_BINDING: &str = "KEY_SHARDS";

/// The OpenAPI document the server serves too.
const OPENAPI: &str = include_str!("../../../docs/openapi.json");

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: worker::Context) -> worker::Result<Response> {
    match route(req, &env).await {
        Ok(response) => Ok(response),
        Err(refusal) => respond::refusal(&refusal),
    }
}

async fn route(req: Request, env: &Env) -> Result<Response, Refusal> {
    let config = config::load(env);
    // Unusable settings were logged when read; clients learn only that no order can
    // be taken now.
    let usable = || config.as_ref().as_ref().map_err(|_| Refusal::NotConfigured);
    let path = req.path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method();
    let readable = matches!(method, Method::Get | Method::Head);
    match (segments.as_slice(), method) {
        (["orders"], Method::Post) => submit(req, env, usable()?).await,
        (["orders"], _) if readable => find_by_key(req, env, usable()?).await,
        (["orders"], _) => not_allowed("GET,HEAD,POST"),
        (["orders", id], _) if readable => find_by_id(&req, env, usable()?, id).await,
        (["orders", _], _) => not_allowed("GET,HEAD"),
        // Delivery is not part of the edge build: no order has a delivery to show.
        (["orders", _, "delivery"], _) if readable => {
            tenant_of(&req, usable()?)?;
            Err(Refusal::NotFound)
        }
        (["orders", _, "delivery"], _) => not_allowed("GET,HEAD"),
        (["healthz"], _) if readable => respond::text("ok").map_err(internal),
        (["readyz"], _) if readable => {
            usable().map_err(|_| Refusal::NotReady("the Worker is not configured"))?;
            respond::text("ready").map_err(internal)
        }
        (["openapi.json"], _) if readable => {
            respond::answer(Answer::order(OPENAPI.as_bytes().to_vec())).map_err(internal)
        }
        (["metrics"], _) if readable => Err(Refusal::MetricsElsewhere),
        (["healthz" | "readyz" | "metrics" | "openapi.json"], _) => not_allowed("GET,HEAD"),
        _ => Err(Refusal::NoRoute),
    }
}

fn not_allowed(allow: &str) -> Result<Response, Refusal> {
    let response = respond::refusal(&Refusal::MethodNotAllowed).map_err(internal)?;
    response.headers().set("allow", allow).map_err(internal)?;
    Ok(response)
}

fn internal(e: worker::Error) -> Refusal {
    worker::console_error!("a response could not be built: {e}");
    Refusal::Internal
}

/// Step 2: the tenant of the bearer token.
fn tenant_of(req: &Request, config: &Config) -> Result<String, Refusal> {
    let tenancy = match &config.access {
        Access::Tokens(table) => Tenancy::Tokens(table),
        Access::Open => Tenancy::Open,
    };
    let authorization = header(req.headers(), "authorization");
    intake::tenant(tenancy, authorization.as_deref().map(str::as_bytes))
}

/// `POST /orders`.
async fn submit(mut req: Request, env: &Env, config: &Config) -> Result<Response, Refusal> {
    let tenant = tenant_of(&req, config)?;
    let headers = req.headers().clone();
    let content_type = header(&headers, "content-type");
    let encoding = header(&headers, "content-encoding");
    intake::check_media_type(
        content_type.iter().map(|v| v.as_bytes()),
        encoding.iter().map(|v| v.as_bytes()),
    )?;
    let declared = header(&headers, "content-length");
    let body = read_body(&mut req, declared.as_deref(), config.max_body).await?;
    let key_line = header(&headers, "idempotency-key");
    let key = intake::idempotency_key(key_line.iter().map(|v| v.as_bytes()))?;
    let scoped = ScopedKey::new(tenant.clone(), key.clone());
    if let Some(answer) = replays::answer(&scoped, &body, now_ms(), config.limits) {
        return respond::answer(answer).map_err(internal);
    }
    let legacy = legacy::stored_answer(env, config, &tenant, key.as_str())
        .await
        .map_err(|e| unavailable("the legacy KV namespace could not be read", e))?;
    let shard = shard::of_key(&scoped, config.shards);
    let command = Command::Submit {
        tenant: tenant.clone(),
        key: key.as_str().to_owned(),
        shard,
        result_ttl_ms: config.limits.result_ttl_ms,
        lease_ttl_ms: config.limits.lease_ttl_ms,
        legacy,
    };
    let response = ask_object(env, &tenant, shard, &command, &body).await?;
    replays::learn(scoped, &body, response)
        .await
        .map_err(|e| unavailable("the object's answer could not be read", e))
}

/// Step 4: the body, refused on a declared length over `max`, else read as it streams
/// in and refused as soon as it passes `max` (a body without `Content-Length` is not
/// read whole first).
async fn read_body(
    req: &mut Request,
    declared: Option<&str>,
    max: u64,
) -> Result<Vec<u8>, Refusal> {
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let mut stream = req.stream().map_err(|_| Refusal::BodyBroken)?;
    if let Err(too_large) = intake::check_declared_length(declared.map(str::as_bytes), max) {
        discard(stream).await;
        return Err(too_large);
    }
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Refusal::BodyBroken)?;
        if let Err(too_large) = intake::check_body_length(body.len() + chunk.len(), max) {
            discard(stream).await;
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads and drops up to [`DISCARD_LIMIT`] more bytes of a refused body, as the server
/// does: a request left half-read is cut off by the runtime, and the client may not
/// get its 413.
async fn discard(mut stream: ByteStream) {
    let mut seen = 0usize;
    while seen < DISCARD_LIMIT {
        match stream.next().await {
            Some(Ok(chunk)) => seen += chunk.len(),
            _ => return,
        }
    }
}

/// `GET /orders?idempotencyKey=K`: the key's shard holds its orders.
async fn find_by_key(req: Request, env: &Env, config: &Config) -> Result<Response, Refusal> {
    let tenant = tenant_of(&req, config)?;
    let url = req
        .url()
        .map_err(|_| Refusal::LookupKey("the URL cannot be read"))?;
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let key: IdempotencyKey =
        intake::lookup_key(Some(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))))?;
    let shard = shard::of_key(&ScopedKey::new(tenant.clone(), key.clone()), config.shards);
    let command = Command::OrderByKey {
        key: key.as_str().to_owned(),
    };
    ask_object(env, &tenant, shard, &command, &[]).await
}

/// `GET /orders/{id}`: the id carries its shard; anything else is unknown.
async fn find_by_id(
    req: &Request,
    env: &Env,
    config: &Config,
    id: &str,
) -> Result<Response, Refusal> {
    let tenant = tenant_of(req, config)?;
    let id = Uuid::parse_str(id).map_err(|_| Refusal::NotFound)?;
    let shard = shard::of_order_id(&id, config.shards).ok_or(Refusal::NotFound)?;
    let command = Command::OrderById {
        order_id: id.to_string(),
    };
    ask_object(env, &tenant, shard, &command, &[]).await
}

/// Sends `command` to the object of `tenant`'s `shard`; its answer is the client's.
async fn ask_object(
    env: &Env,
    tenant: &str,
    shard: u16,
    command: &Command,
    body: &[u8],
) -> Result<Response, Refusal> {
    let stub = env
        .durable_object(SHARDS_BINDING)
        .and_then(|ns| ns.get_by_name(&shard::object_name(tenant, shard)))
        .map_err(|e| unavailable("the key shard cannot be reached", e))?;
    let payload = js_sys::Uint8Array::from(wire::encode(command, body).as_slice());
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(payload.into()));
    let request = Request::new_with_init("https://key-shard/", &init)
        .map_err(|e| unavailable("the object request cannot be made", e))?;
    stub.fetch_with_request(request)
        .await
        .map_err(|e| unavailable("the key shard did not answer", e))
}

/// A failure whose outcome is unknown to the client: logged, answered 503.
fn unavailable(what: &str, e: worker::Error) -> Refusal {
    worker::console_error!("{what}: {e}");
    Refusal::Unavailable
}

/// A header's value; several lines of it arrive joined with ", " (Fetch API).
fn header(headers: &Headers, name: &str) -> Option<String> {
    headers.get(name).ok().flatten()
}
