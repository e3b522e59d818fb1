//! `Client::new()` reads SEMANTICA_HOME, SEMANTICA_URL and SEMANTICA_TOKEN. The only test
//! of this binary, so that setting the environment races no other test.

mod common;

use common::Daemon;
use semantica_client::{Client, ErrorKind};

#[tokio::test(flavor = "multi_thread")]
async fn client_new_finds_the_daemon_from_the_environment() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    std::env::set_var("SEMANTICA_HOME", home.path());
    std::env::remove_var("SEMANTICA_URL");
    std::env::remove_var("SEMANTICA_TOKEN");
    // The socket, no token.
    assert!(Client::new().unwrap().stats().await.is_ok());
    // TCP, the token from $SEMANTICA_HOME/token.
    std::env::set_var("SEMANTICA_URL", format!("http://{}", daemon.rpc_addr));
    assert!(Client::new().unwrap().stats().await.is_ok());
    // TCP, SEMANTICA_TOKEN first.
    std::env::set_var("SEMANTICA_TOKEN", "not-the-token");
    assert_eq!(Client::new().unwrap().stats().await.unwrap_err().kind(), ErrorKind::Unauthorized);
    std::env::set_var("SEMANTICA_TOKEN", &daemon.token);
    assert!(Client::new().unwrap().stats().await.is_ok());
    // An empty data directory: no daemon.
    let empty = tempfile::tempdir().unwrap();
    std::env::remove_var("SEMANTICA_URL");
    std::env::set_var("SEMANTICA_HOME", empty.path());
    let error = Client::new().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::DaemonNotRunning);
    assert!(error.to_string().contains("start one with `semantica serve`"), "{error}");
}
