//! A fresh PostgreSQL database per test, dropped when the test ends.
//!
//! The server comes from `ORDERGATE_TEST_POSTGRES` (default: this machine's trust-auth
//! server). A test that cannot reach it fails; it never skips.

use tokio_postgres::NoTls;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The maintenance URL tests create their databases from.
pub fn admin_url() -> String {
    std::env::var("ORDERGATE_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A database that lives as long as this value.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

/// Connects to `url` and keeps the connection driven in the background.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {url}: {e}"));
    tokio::spawn(connection);
    client
}

impl TestDb {
    pub async fn create() -> Self {
        let admin = admin_url();
        let name = format!("ordergate_test_{}", uuid::Uuid::now_v7().simple());
        connect(&admin)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        Self { name, url }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    /// An outage of this database: new connections refused, open ones ended.
    pub async fn cut_off(&self) {
        connect(&admin_url())
            .await
            .batch_execute(&format!(
                "ALTER DATABASE {0} ALLOW_CONNECTIONS false; \
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{0}'",
                self.name
            ))
            .await
            .expect("cut the database off");
    }

    /// The end of the outage.
    pub async fn bring_back(&self) {
        connect(&admin_url())
            .await
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                self.name
            ))
            .await
            .expect("bring the database back");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, so the clean-up gets a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                connect(&admin_url())
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
