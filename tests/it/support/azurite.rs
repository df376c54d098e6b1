//! Microsoft's blob emulator, Azurite, for differential tests: installed (once, cached) by
//! `scripts/azurite.sh` and started on a free loopback port with telemetry disabled and its api-version
//! check off; the guard kills it by pid when the test ends.
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use url::Url;

use super::{repo_root, wait_until};

/// Azurite's documented development account key.
pub(crate) const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
pub(crate) const DEV_ACCOUNT: &str = "devstoreaccount1";

/// A running Azurite blob service; killed by pid on drop.
pub(crate) struct Azurite {
    child: Child,
    pub(crate) port: u16,
    _data: tempfile::TempDir,
}

impl Azurite {
    pub(crate) async fn start() -> Self {
        let out = Command::new(repo_root().join("scripts/azurite.sh"))
            .output()
            .expect("run scripts/azurite.sh");
        assert!(
            out.status.success(),
            "installing azurite failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = tempfile::tempdir().unwrap();
        let child = Command::new(&bin)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--location",
            ])
            .arg(data.path())
            .args(["--silent", "--disableTelemetry", "--skipApiVersionCheck"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start azurite-blob");
        let azurite = Self {
            child,
            port,
            _data: data,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_until("azurite listens", Duration::from_secs(60), async || {
            tokio::net::TcpStream::connect(addr).await.ok()
        })
        .await;
        azurite
    }

    pub(crate) fn endpoint(&self) -> Url {
        Url::parse(&format!("http://127.0.0.1:{}/{DEV_ACCOUNT}/", self.port)).unwrap()
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if self.child.kill().is_ok() {
            self.child.wait().ok();
        }
    }
}
