//! Helpers shared by the integration tests that talk to AWS APIs: a real
//! API server (moto's `moto_server`) on loopback, one per test, so tests
//! never share state and need no network.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `moto_server` child on a free loopback port, killed on drop.
pub struct MotoServer {
    child: Child,
    /// `http://127.0.0.1:{port}`: the endpoint for every AWS client.
    pub endpoint: String,
}

impl MotoServer {
    /// Starts the server and waits until it accepts connections.
    pub fn start() -> MotoServer {
        let binary = moto_binary().unwrap_or_else(|| {
            panic!(
                "moto_server not found: run scripts/test (it installs moto[server] into its venv \
                 and sets BETFLOW_MOTO_SERVER), or `pip install 'moto[server]'` and set \
                 BETFLOW_MOTO_SERVER=/path/to/moto_server"
            )
        });
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut server = MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto_server exited before answering: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `BETFLOW_MOTO_SERVER`, else `moto_server` on PATH.
pub fn moto_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BETFLOW_MOTO_SERVER") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("moto_server"))
        .find(|p| p.is_file())
}

/// The lake's S3 settings against `moto`, with its bucket created.
pub async fn moto_lake(moto: &MotoServer) -> dags::lake::S3Config {
    let s3 = dags::lake::S3Config {
        endpoint: Some(moto.endpoint.clone()),
        region: "us-east-1".to_owned(),
        bucket: "betflow-lake".to_owned(),
        path_style: true,
        access_key_id: "betflow-test".to_owned(),
        secret_access_key: "betflow-test-secret".to_owned(),
        session_token: None,
    };
    dags::lake::S3Store::new(&s3)
        .unwrap()
        .ensure_bucket()
        .await
        .expect("bucket");
    s3
}
