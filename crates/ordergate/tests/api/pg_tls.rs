//! TLS to PostgreSQL, against the local server with certificates made here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ordergate::store::RecordStore;
use ordergate::store::postgres::PostgresStore;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use crate::pg::{TestDb, admin_url, connect};

/// A CA and a server certificate for `names`, signed by it.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki(names: &[&str]) -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).expect("CA");
    let key = KeyPair::generate().expect("server key");
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let cert = CertificateParams::new(names)
        .expect("server params")
        .signed_by(&key, &ca, &ca_key)
        .expect("server certificate");
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// The local server's TLS settings, pointed at certificates of the test's and put
/// back when dropped.
struct ServerTls {
    dir: PathBuf,
    restored: bool,
}

impl Drop for ServerTls {
    /// A failed assertion must not leave the shared server on the test's files.
    fn drop(&mut self) {
        if self.restored {
            return;
        }
        let dir = self.dir.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(reset_server(&dir));
        })
        .join();
    }
}

async fn reset_server(dir: &Path) {
    let admin = connect(&admin_url()).await;
    for statement in [
        "ALTER SYSTEM RESET ssl",
        "ALTER SYSTEM RESET ssl_cert_file",
        "ALTER SYSTEM RESET ssl_key_file",
        "SELECT pg_reload_conf()",
    ] {
        admin
            .batch_execute(statement)
            .await
            .expect("restore the server's TLS settings");
    }
    let _ = std::fs::remove_dir_all(dir);
}

impl ServerTls {
    async fn install(pki: &Pki, name: &str) -> Self {
        let admin = connect(&admin_url()).await;
        let row = admin
            .query_one("SHOW data_directory", &[])
            .await
            .expect("data dir");
        let data_dir: String = row.get(0);
        let dir = Path::new(&data_dir).join("ordergate-test-tls");
        std::fs::create_dir_all(&dir).expect("tls dir");
        let (cert, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert, &pki.cert_pem).expect("cert");
        std::fs::write(&key, &pki.key_pem).expect("key");
        let owner = std::fs::metadata(&data_dir).expect("owner");
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        std::os::unix::fs::chown(&key, Some(owner.uid()), Some(owner.gid())).expect("chown");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        // ALTER SYSTEM may not share a transaction: one statement at a time.
        for statement in [
            "ALTER SYSTEM SET ssl = on".to_owned(),
            format!("ALTER SYSTEM SET ssl_cert_file = '{}'", cert.display()),
            format!("ALTER SYSTEM SET ssl_key_file = '{}'", key.display()),
            "SELECT pg_reload_conf()".to_owned(),
        ] {
            admin
                .batch_execute(&statement)
                .await
                .expect("point the server at the test's certificate");
        }
        until_new_sessions_use(&cert.display().to_string()).await;
        Self {
            dir,
            restored: false,
        }
    }

    async fn restore(mut self) {
        reset_server(&self.dir).await;
        self.restored = true;
    }
}

/// The reload is asynchronous: new sessions see the new file once it is done.
async fn until_new_sessions_use(cert: &str) {
    for _ in 0..500 {
        let session = connect(&admin_url()).await;
        let row = session
            .query_one("SHOW ssl_cert_file", &[])
            .await
            .expect("show");
        if row.get::<_, String>(0) == cert {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server never took {cert}");
}

/// Opens the store with `query` added to the test database's URL; on success,
/// whether every connection of ordergate to that database is encrypted.
async fn open_with(db: &TestDb, query: &str) -> Result<bool, String> {
    let url = format!("{}?{query}", db.url.replacen("localhost", "127.0.0.1", 1));
    let store = PostgresStore::open(&url, Duration::from_secs(30))
        .await
        .map_err(|e| ordergate::telemetry::cause_chain(&e))?;
    store.ping().await.map_err(|e| e.to_string())?;
    let admin = connect(&admin_url()).await;
    let row = admin
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s ON s.pid = a.pid \
             WHERE a.datname = $1 AND a.application_name = 'ordergate'",
            &[&db.name],
        )
        .await
        .expect("pg_stat_ssl");
    let (all, encrypted): (i64, i64) = (row.get(0), row.get(1));
    store.close().await;
    Ok(all > 0 && all == encrypted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sslmode_does_what_it_says_against_a_server_with_a_certificate_of_ours() {
    let dir = tempfile::tempdir().expect("dir");
    let ours = pki(&["localhost", "127.0.0.1"]);
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &ours.ca_pem).expect("ca");
    let stranger = dir.path().join("stranger.pem");
    std::fs::write(&stranger, pki(&["localhost"]).ca_pem).expect("other ca");
    let db = TestDb::create().await;

    let tls = ServerTls::install(&ours, "matching").await;
    let ca_arg = format!("sslrootcert={}", ca.display());
    let stranger_arg = format!("sslrootcert={}", stranger.display());
    assert_eq!(
        open_with(&db, "sslmode=disable").await,
        Ok(false),
        "disable: plain"
    );
    assert_eq!(
        open_with(&db, "sslmode=prefer").await,
        Ok(true),
        "prefer: TLS when offered"
    );
    assert_eq!(open_with(&db, "sslmode=require").await, Ok(true), "require");
    assert_eq!(
        open_with(&db, &format!("sslmode=verify-ca&{ca_arg}")).await,
        Ok(true)
    );
    assert_eq!(
        open_with(&db, &format!("sslmode=verify-full&{ca_arg}")).await,
        Ok(true)
    );
    let refused = open_with(&db, &format!("sslmode=verify-full&{stranger_arg}")).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("TLS handshake failed")),
        "a certificate from another CA is refused: {refused:?}"
    );
    tls.restore().await;

    let elsewhere = pki(&["elsewhere.invalid"]);
    std::fs::write(&ca, &elsewhere.ca_pem).expect("ca");
    let tls = ServerTls::install(&elsewhere, "other-name").await;
    assert_eq!(
        open_with(&db, &format!("sslmode=verify-ca&{ca_arg}")).await,
        Ok(true),
        "verify-ca does not check the name"
    );
    let refused = open_with(&db, &format!("sslmode=verify-full&{ca_arg}")).await;
    assert!(refused.is_err(), "verify-full checks the name: {refused:?}");
    tls.restore().await;
}
