//! The Worker's `fetch`: routes, the HTTP checks in the contract's order (404/405 →
//! 401 → 415 → 413 → 400), then the object that owns the key or the order.

use futures_util::StreamExt;
use futures_util::future::join_all;
use ordergate_core::intake::{self, DISCARD_LIMIT, PostHeaders, Tenancy, joined_lines};
use ordergate_core::shard::{self, object_name};
use ordergate_core::{Answer, IdempotencyKey, Refusal, ScopedKey, legacy as legacy_rules};
use uuid::Uuid;
use worker::{ByteStream, Env, Headers, Method, Request, RequestInit, Response, event, js_sys};

use crate::config::{self, Access, Config};
use crate::legacy;
use crate::platform::now_ms;
use crate::replays;
use crate::respond;
use crate::wire::{self, Command, Reply};

/// The Durable Object namespace of the key shards.
const SHARDS_BINDING: &str = "KEY_SHARDS";

/// The OpenAPI document the server serves too.
const OPENAPI: &str = include_str!("../../../docs/openapi.json");

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: worker::Context) -> worker::Result<Response> {
    let head = req.inner().method() == "HEAD";
    let response = match route(req, &env).await {
        Ok(response) => response,
        Err(refusal) => respond::refusal(&refusal)?,
    };
    if head {
        return respond::without_body(response).await;
    }
    Ok(response)
}

async fn route(req: Request, env: &Env) -> Result<Response, Refusal> {
    let config = config::load(env);
    // Unusable settings were logged when read; clients learn only that no order can
    // be taken now.
    let usable = || config.as_ref().as_ref().map_err(|_| Refusal::NotConfigured);
    let path = req.path();
    let Some(segments) = intake::path_segments(&path) else {
        return Err(Refusal::NoRoute);
    };
    // The method as sent: workers-rs reads methods it does not know as GET.
    let method = req.inner().method();
    let readable = matches!(method.as_str(), "GET" | "HEAD");
    match (segments.as_slice(), method.as_str()) {
        (["orders"], "POST") => submit(req, env, usable()?).await,
        (["orders"], _) if readable => find_by_key(req, env, usable()?).await,
        (["orders"], _) => not_allowed("GET,HEAD,POST"),
        (["orders", id], _) if readable => find_by_id(&req, env, usable()?, id).await,
        (["orders", _], _) => not_allowed("GET,HEAD"),
        (["orders", id, "delivery"], _) if readable => {
            find_delivery(&req, env, usable()?, id).await
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

/// A header's lines, split back from the Fetch API's joined value.
fn lines(value: &Option<String>) -> Vec<&[u8]> {
    joined_lines(value.as_deref().map(str::as_bytes))
}

/// Who may call.
fn tenancy(config: &Config) -> Tenancy<'_> {
    match &config.access {
        Access::Tokens(table) => Tenancy::Tokens(table),
        Access::Open => Tenancy::Open,
    }
}

/// Step 2 of a lookup: the tenant of the bearer token.
fn tenant_of(req: &Request, config: &Config) -> Result<String, Refusal> {
    let authorization = header(req.headers(), "authorization");
    intake::tenant(tenancy(config), lines(&authorization).into_iter())
}

/// `POST /orders`.
async fn submit(mut req: Request, env: &Env, config: &Config) -> Result<Response, Refusal> {
    let headers = req.headers().clone();
    let value = |name| header(&headers, name);
    let (authorization, content_type, encoding, declared, key_line) = (
        value("authorization"),
        value("content-type"),
        value("content-encoding"),
        value("content-length"),
        value("idempotency-key"),
    );
    let post = PostHeaders {
        authorization: lines(&authorization),
        content_type: lines(&content_type),
        content_encoding: lines(&encoding),
        content_length: declared.as_deref().map(str::as_bytes),
        idempotency_key: lines(&key_line),
    };
    let tenant = match intake::before_body(tenancy(config), &post, config.max_body) {
        Ok(tenant) => tenant,
        Err(too_large @ Refusal::PayloadTooLarge(_)) => {
            if let Ok(stream) = req.stream() {
                discard(stream).await;
            }
            return Err(too_large);
        }
        Err(refused) => return Err(refused),
    };
    let body = read_body(&mut req, config.max_body, declared.is_some()).await?;
    let key = intake::after_body(&post)?;
    let scoped = ScopedKey::new(tenant.clone(), key.clone());
    let now = now_ms();
    if let Some(answer) = replays::answer(&scoped, &body, now, config.limits) {
        return respond::answer(answer).map_err(internal);
    }
    let route = config.layout.route(&key, now, config.limits.result_ttl_ms);
    if let Some(earlier) = route.earlier_record
        && let Some(answer) =
            answer_from_earlier_shard(env, config, &scoped, earlier, &body).await?
    {
        return Ok(answer);
    }
    let legacy = legacy::stored_answer(env, config, &tenant, key_line.as_deref(), &key)
        .await
        .map_err(|e| unavailable("the legacy KV namespace could not be read", e))?;
    let command = Command::Submit {
        tenant: tenant.clone(),
        key: key.as_str().to_owned(),
        shard: route.place,
        result_ttl_ms: config.limits.result_ttl_ms,
        lease_ttl_ms: config.limits.lease_ttl_ms,
        legacy,
    };
    let reply = ask_object(env, &tenant, route.place, &command, &body).await?;
    replays::learn(scoped, &body, reply).map_err(internal)
}

/// After a shard count change: the key's live record in the shard the previous count
/// gave it answers the request (its replay, or a reused key), as it would have there.
async fn answer_from_earlier_shard(
    env: &Env,
    config: &Config,
    key: &ScopedKey,
    shard: u16,
    body: &[u8],
) -> Result<Option<Response>, Refusal> {
    let command = Command::RecordByKey {
        key: key.key.as_str().to_owned(),
    };
    let mut reply = ask_object(env, &key.tenant, shard, &command, &[]).await?;
    let Some(kept) = reply.keep.take() else {
        return match reply.status {
            404 => Ok(None),
            _ => respond::reply(reply).map(Some).map_err(internal),
        };
    };
    let answer = replays::judge(key, body, now_ms(), config.limits, &kept.record, false);
    replays::keep(key.clone(), body, kept);
    let answer = answer.ok_or(Refusal::Internal)?;
    respond::answer(answer).map(Some).map_err(internal)
}

/// Step 4: the body. With a declared length (within `max`: a larger one was refused
/// before), in one call: the runtime delivers no more than the length declares.
/// Without one, as it streams in, refused as soon as it passes `max`, never read
/// whole first.
async fn read_body(req: &mut Request, max: u64, declared: bool) -> Result<Vec<u8>, Refusal> {
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    if declared {
        let body = req.bytes().await.map_err(|_| Refusal::BodyBroken)?;
        intake::check_body_length(body.len(), max)?;
        return Ok(body);
    }
    let mut stream = req.stream().map_err(|_| Refusal::BodyBroken)?;
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

/// `GET /orders?idempotencyKey=K`: the key's shard holds its orders (and, after a
/// shard count change, its earlier shards hold the older ones); for the legacy tenant,
/// the old worker's answer when no order is here.
async fn find_by_key(req: Request, env: &Env, config: &Config) -> Result<Response, Refusal> {
    let tenant = tenant_of(&req, config)?;
    let url = req
        .url()
        .map_err(|_| Refusal::LookupKey("the URL cannot be read"))?;
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let key: IdempotencyKey =
        intake::lookup_key(Some(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))))?;
    let command = Command::OrderByKey {
        key: key.as_str().to_owned(),
    };
    for shard in config.layout.lookup_shards(&key, now_ms()) {
        let reply = ask_object(env, &tenant, shard, &command, &[]).await?;
        if reply.status != 404 {
            return respond::reply(reply).map_err(internal);
        }
    }
    let stored = legacy::stored_answer(env, config, &tenant, None, &key)
        .await
        .map_err(|e| unavailable("the legacy KV namespace could not be read", e))?;
    match stored.filter(|s| legacy_rules::order_id(s.as_bytes()).is_some()) {
        Some(stored) => respond::answer(Answer::order(stored.into_bytes())).map_err(internal),
        None => Err(Refusal::NotFound),
    }
}

/// `GET /orders/{id}`: an id of ours carries its shard. The old worker's ids do not:
/// for the legacy tenant, the objects that may have imported one are all asked.
async fn find_by_id(
    req: &Request,
    env: &Env,
    config: &Config,
    id: &str,
) -> Result<Response, Refusal> {
    let tenant = tenant_of(req, config)?;
    let id = order_uuid(id)?;
    let command = Command::OrderById {
        order_id: id.to_string(),
    };
    if let Some(shard) = shard::of_order_id(&id) {
        let reply = ask_object(env, &tenant, shard, &command, &[]).await?;
        return respond::reply(reply).map_err(internal);
    }
    if config.legacy_tenant.as_deref() != Some(tenant.as_str()) {
        return Err(Refusal::NotFound);
    }
    let asked = config
        .layout
        .every_shard()
        .map(|shard| ask_object(env, &tenant, shard, &command, &[]));
    let mut replies: Vec<_> = join_all(asked).await;
    // An object that did not answer may hold it: then the answer is not a 404.
    replies.sort_by_key(|reply| match reply {
        Ok(r) if r.status == 200 => 0,
        Err(_) => 1,
        Ok(_) => 2,
    });
    match replies.into_iter().next() {
        Some(reply) => respond::reply(reply?).map_err(internal),
        None => Err(Refusal::NotFound),
    }
}

/// `GET /orders/{id}/delivery`: the order's object keeps its delivery. 404 without
/// `ORDERGATE_DELIVER`, and for the old worker's ids (imports are not delivered).
async fn find_delivery(
    req: &Request,
    env: &Env,
    config: &Config,
    id: &str,
) -> Result<Response, Refusal> {
    let tenant = tenant_of(req, config)?;
    if config.delivery.is_none() {
        return Err(Refusal::NotFound);
    }
    let id = order_uuid(id)?;
    let shard = shard::of_order_id(&id).ok_or(Refusal::NotFound)?;
    let command = Command::DeliveryById {
        order_id: id.to_string(),
    };
    let reply = ask_object(env, &tenant, shard, &command, &[]).await?;
    respond::reply(reply).map_err(internal)
}

/// The order id of a path segment; no such order (404) if it is not a UUID.
fn order_uuid(segment: &str) -> Result<Uuid, Refusal> {
    percent_decoded(segment)
        .and_then(|id| Uuid::parse_str(&id).ok())
        .ok_or(Refusal::NotFound)
}

/// A path segment as the server's router reads it: percent-decoded, UTF-8.
fn percent_decoded(segment: &str) -> Option<String> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// Sends `command` to the object of `tenant`'s `shard`, and reads its reply.
async fn ask_object(
    env: &Env,
    tenant: &str,
    shard: u16,
    command: &Command,
    body: &[u8],
) -> Result<Reply, Refusal> {
    let stub = env
        .durable_object(SHARDS_BINDING)
        .and_then(|ns| ns.get_by_name(&object_name(tenant, shard)))
        .map_err(|e| unavailable("the key shard cannot be reached", e))?;
    let payload = js_sys::Uint8Array::from(wire::encode(command, body).as_slice());
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(payload.into()));
    let request = Request::new_with_init("https://key-shard/", &init)
        .map_err(|e| unavailable("the object request cannot be made", e))?;
    let mut response = stub
        .fetch_with_request(request)
        .await
        .map_err(|e| unavailable("the key shard did not answer", e))?;
    let bytes = response
        .bytes()
        .await
        .map_err(|e| unavailable("the key shard's reply could not be read", e))?;
    wire::decode_reply(bytes).map_err(|e| {
        worker::console_error!("a malformed reply came from a key shard: {e}");
        Refusal::Unavailable
    })
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
