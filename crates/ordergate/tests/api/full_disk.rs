//! A full disk gives 503 and an unready server, never a crash or a corrupt file, and
//! the server recovers once there is room again. The disk is a small ext4 image on a
//! loop device (CI runs as root), with a ballast file that is deleted to make room.

use std::process::Command;
use std::time::Duration;

use futures::future::join_all;

use crate::process;

const IMAGE_MIB: u32 = 24;
const BALLAST_MIB: u32 = 8;

/// A mounted ext4 image, unmounted and removed on drop.
struct SmallDisk {
    image: std::path::PathBuf,
    mount: tempfile::TempDir,
}

fn run(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd).args(args).status().expect(cmd);
    assert!(status.success(), "{cmd} {args:?}");
}

impl SmallDisk {
    fn new(dir: &std::path::Path) -> Self {
        let image = dir.join("disk.img");
        let mount = tempfile::tempdir().expect("mount point");
        let size = format!("{IMAGE_MIB}M");
        run("truncate", &["-s", &size, &image.display().to_string()]);
        run("mkfs.ext4", &["-q", &image.display().to_string()]);
        let target = mount.path().display().to_string();
        run(
            "mount",
            &["-o", "loop", &image.display().to_string(), &target],
        );
        let ballast = mount.path().join("ballast").display().to_string();
        let count = format!("count={BALLAST_MIB}");
        run(
            "dd",
            &[
                "if=/dev/zero",
                &format!("of={ballast}"),
                "bs=1M",
                &count,
                "status=none",
            ],
        );
        Self { image, mount }
    }

    fn path(&self) -> &std::path::Path {
        self.mount.path()
    }

    fn make_room(&self) {
        std::fs::remove_file(self.path().join("ballast")).expect("remove ballast");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.mount.path())
            .status();
        let _ = std::fs::remove_file(&self.image);
    }
}

async fn post(client: &reqwest::Client, url: &str, key: &str) -> (u16, bytes::Bytes) {
    let (status, _, body) = process::post_order(client, url, key)
        .await
        .expect("the server answers");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_503_and_unready_then_the_server_recovers_with_nothing_lost() {
    let dir = tempfile::tempdir().expect("dir");
    let disk = SmallDisk::new(dir.path());
    let gw = process::serve_sqlite(disk.path());
    let client = reqwest::Client::new();
    let url = gw.url("/orders");
    let mut acked = Vec::new();
    let mut full = false;
    for round in 0..2000 {
        let keys: Vec<String> = (0..32).map(|c| format!("fill-{round}-{c}")).collect();
        let answers = join_all(keys.iter().map(|k| post(&client, &url, k))).await;
        for (key, (status, body)) in keys.into_iter().zip(answers) {
            match status {
                201 => acked.push((key, body)),
                503 => full = true,
                other => panic!("{key}: {other} while the disk fills"),
            }
        }
        if full {
            break;
        }
    }
    assert!(full, "the file-size limit was reached");
    let ready = client.get(gw.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 503, "unready while writes fail");
    let health = client
        .get(gw.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200, "the process lives on");

    disk.make_room();
    assert!(
        gw.becomes_ready(&client).await,
        "ready again once writes succeed"
    );
    assert_eq!(post(&client, &url, "after-the-disk-filled").await.0, 201);
    for (key, body) in &acked {
        let (status, replayed) = post(&client, &url, key).await;
        assert_eq!(
            (status, &replayed),
            (201, body),
            "{key} survives, byte for byte"
        );
    }
    gw.signal("TERM");
    assert!(gw.wait(Duration::from_secs(10)).success());
    let conn = rusqlite::Connection::open(disk.path().join("ordergate.db")).expect("open");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity check");
    assert_eq!(check, "ok");
}
