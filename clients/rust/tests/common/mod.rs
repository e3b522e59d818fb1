//! The real `semantica` binary on a temp `SEMANTICA_HOME` and port 0. The binary is
//! `SEMANTICA_BIN`, or the workspace's own build next to this test
//! (`target/<profile>/semantica`, built by `cargo test --workspace` or `cargo build -p semantica`).

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("SEMANTICA_BIN") {
        return PathBuf::from(bin);
    }
    // target/<profile>/deps/<this test> → target/<profile>/semantica
    let exe = std::env::current_exe().expect("the test's path");
    let bin = exe.parent().and_then(Path::parent).expect("target/<profile>").join("semantica");
    assert!(
        bin.exists(),
        "no daemon binary at {}: build it with `cargo build -p semantica` (cargo test --workspace does) or set SEMANTICA_BIN",
        bin.display()
    );
    bin
}

pub struct Daemon {
    child: Child,
    pub home: PathBuf,
    pub rpc_addr: String,
    pub socket: PathBuf,
    pub token: String,
}

impl Daemon {
    pub fn start(home: &Path) -> Daemon {
        let mut child = Command::new(binary())
            .arg("serve")
            .env("SEMANTICA_HOME", home)
            .env("SEMANTICA_RPC_ADDR", "127.0.0.1:0")
            .env("SEMANTICA_WORKERS", "2")
            .env_remove("SEMANTICA_TOKEN")
            .env_remove("SEMANTICA_DB_PATH")
            .env_remove("SEMANTICA_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start semantica serve");
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(home.join("daemon.json")) {
                let info: Value = serde_json::from_str(&text).expect("daemon.json is JSON");
                let token = std::fs::read_to_string(home.join("token")).unwrap().trim().to_owned();
                return Daemon {
                    child,
                    home: home.to_owned(),
                    rpc_addr: info["rpc_addr"].as_str().unwrap().to_owned(),
                    socket: PathBuf::from(info["socket"].as_str().unwrap()),
                    token,
                };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the daemon exited early: {status}");
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no daemon.json after 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
