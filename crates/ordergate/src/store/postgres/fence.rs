//! Which host of a multi-host URL a new connection may use: the gateway's own fence
//! against a zombie primary.
//!
//! `target_session_attrs=read-write` takes the first host that accepts writes. A
//! zombie (a primary whose HA agent died, so it was never demoted while a standby was
//! promoted elsewhere) still accepts them: with synchronous replication every commit
//! on it then waits for standbys that have left it, for ever. So, for a URL with
//! several hosts, each host is tried in turn and a connection is kept only on a
//! server that is not in recovery and, if it names synchronous standbys, has at least
//! one standby connected. A zombie fails that as soon as its standbys have followed
//! the new primary; a healthy primary fails it only while it could not commit anyway.

use std::sync::Arc;

use tokio_postgres::Config;

/// `postgres://user@h1:1,h2:2/db?x` → one URL per host, everything else kept; `None`
/// for a URL with one host (or in key=value form, which is left to tokio-postgres).
pub fn single_host_urls(url: &str) -> Option<Vec<String>> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    let hosts: Vec<&str> = hosts.split(',').collect();
    (hosts.len() > 1).then(|| {
        hosts
            .iter()
            .map(|host| format!("{scheme}://{userinfo}{host}{tail}"))
            .collect()
    })
}

/// One connection configuration per host, tried in the URL's order.
#[derive(Clone)]
pub struct Fence {
    pub hosts: Arc<Vec<Config>>,
}

/// True on a server a write must not go to: a standby, or a primary that names
/// synchronous standbys and has none of them connected (a zombie, or one that cannot
/// commit). A role that may read replication details (`pg_monitor`, or a superuser)
/// sees each standby's `sync_state`, and an asynchronous one does not count; for
/// other roles it is NULL, and any connected standby counts.
pub const UNFIT: &str = "SELECT pg_is_in_recovery() \
     OR (current_setting('synchronous_standby_names') <> '' \
         AND NOT EXISTS (SELECT 1 FROM pg_stat_replication \
                         WHERE sync_state IS NULL OR sync_state IN ('sync', 'quorum')))";

/// The error of a connection when every host was reachable and none fit: raised by
/// the server so that it is the client library's own error type.
pub const NO_FIT_HOST: &str = "DO $$ BEGIN RAISE EXCEPTION \
     'no host of the URL is a primary with its synchronous standbys (a zombie primary \
      is skipped until its standbys are back)'; END $$";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_host_url_becomes_one_url_per_host() {
        let urls = single_host_urls(
            "postgres://og:pw@10.0.0.1:5432,10.0.0.2:5433/orders?target_session_attrs=read-write",
        )
        .expect("several hosts");
        assert_eq!(
            urls,
            [
                "postgres://og:pw@10.0.0.1:5432/orders?target_session_attrs=read-write",
                "postgres://og:pw@10.0.0.2:5433/orders?target_session_attrs=read-write",
            ]
        );
        assert_eq!(
            single_host_urls("postgresql://a,b?sslmode=require").expect("two"),
            [
                "postgresql://a?sslmode=require",
                "postgresql://b?sslmode=require"
            ]
        );
        assert!(single_host_urls("postgres://og@db/orders").is_none());
        assert!(single_host_urls("host=a,b dbname=x").is_none());
    }
}
