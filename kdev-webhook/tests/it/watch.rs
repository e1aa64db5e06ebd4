//! Certificate files reloaded through the file watch (the poll set to an hour, so only the watch
//! can see the changes), including kubelet's `..data` symlink swap.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kdev_webhook::Server;
use kdev_webhook::admission::{Request, Response};
use kdev_webhook::tls::ServingCert;
use serde_json::json;

use crate::support::{self, Ca, Leaf, pod, review};

async fn allow(_req: Request) -> Response {
    Response::allowed()
}

pub fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("kdev-webhook-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Connects until the server presents `want` (at most 30 s); the last certificate seen.
pub async fn wait_for_cert(addr: std::net::SocketAddr, ca_pem: &str, want: &[u8]) -> Vec<u8> {
    let mut seen = Vec::new();
    for _ in 0..600 {
        seen = support::connect(addr, ca_pem).await.peer_cert;
        if seen == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

/// A Secret volume as kubelet lays it out: `tls.crt -> ..data/tls.crt`, `..data -> ..<version>`.
#[cfg(unix)]
struct SecretVolume {
    dir: PathBuf,
    version: u32,
}

#[cfg(unix)]
impl SecretVolume {
    fn new(dir: &Path, leaf: &Leaf) -> SecretVolume {
        let mut volume = SecretVolume {
            dir: dir.to_path_buf(),
            version: 0,
        };
        volume.publish(leaf);
        for file in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{file}"), dir.join(file)).unwrap();
        }
        volume
    }

    /// Writes `leaf` into a new versioned directory and swaps `..data` to it atomically.
    fn publish(&mut self, leaf: &Leaf) {
        self.version += 1;
        let versioned = format!("..v{}", self.version);
        let target = self.dir.join(&versioned);
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("tls.crt"), &leaf.cert_pem).unwrap();
        std::fs::write(target.join("tls.key"), &leaf.key_pem).unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&versioned, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if self.version > 1 {
            std::fs::remove_dir_all(self.dir.join(format!("..v{}", self.version - 1))).unwrap();
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_secret_volume_symlink_swap_is_seen_by_the_file_watch() {
    let ca = Ca::new();
    let first = ca.leaf();
    let dir = temp_dir("watch-symlink");
    let mut volume = SecretVolume::new(&dir, &first);
    let tls = ServingCert::from_dir(&dir).poll_interval(Duration::from_secs(3600));
    let running = support::start(Server::builder().raw("/allow", allow).tls(tls)).await;

    let mut old = support::connect(running.addr, &ca.pem).await;
    assert_eq!(old.peer_cert, first.der());

    let second = ca.leaf();
    volume.publish(&second);
    assert_eq!(
        wait_for_cert(running.addr, &ca.pem, &second.der()).await,
        second.der(),
        "the swapped certificate was never served"
    );

    // Again, to show the watch survives the directory it followed being removed.
    let third = ca.leaf();
    volume.publish(&third);
    assert_eq!(wait_for_cert(running.addr, &ca.pem, &third.der()).await, third.der());

    // The keep-alive connection from before both swaps still answers, on its first certificate.
    let answer = old
        .admit(
            "/allow",
            &review("kept", "CREATE", Some(pod("a", json!({}))), None, false),
        )
        .await;
    assert_eq!(answer["uid"], "kept");
    assert_eq!(old.peer_cert, first.der());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn files_rewritten_in_place_are_seen_by_the_file_watch() {
    let ca = Ca::new();
    let first = ca.leaf();
    let dir = temp_dir("watch-inplace");
    std::fs::write(dir.join("tls.crt"), &first.cert_pem).unwrap();
    std::fs::write(dir.join("tls.key"), &first.key_pem).unwrap();
    let tls = ServingCert::from_dir(&dir).poll_interval(Duration::from_secs(3600));
    let running = support::start(Server::builder().raw("/allow", allow).tls(tls)).await;
    let mut old = support::connect(running.addr, &ca.pem).await;
    assert_eq!(old.peer_cert, first.der());

    // Truncated and rewritten in place, the key first: in between, the server may read a
    // mismatched or empty pair, which it must skip.
    let second = ca.leaf();
    std::fs::write(dir.join("tls.key"), &second.key_pem).unwrap();
    std::fs::write(dir.join("tls.crt"), &second.cert_pem).unwrap();
    assert_eq!(wait_for_cert(running.addr, &ca.pem, &second.der()).await, second.der());

    let answer = old
        .admit(
            "/allow",
            &review("still", "CREATE", Some(pod("a", json!({}))), None, false),
        )
        .await;
    assert_eq!(answer["uid"], "still");
    let _ = std::fs::remove_dir_all(&dir);
}
