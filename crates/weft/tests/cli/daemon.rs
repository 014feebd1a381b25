//! The daemon's lifecycle: identity across restarts, clean shutdown on
//! SIGTERM, the files it writes, and help text.

use std::time::Duration;

use crate::support::{loopback_args, unique_network, weft_raw, Daemon};

#[test]
fn keeps_its_peer_id_across_a_restart_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let network = unique_network("restart");
    let mut first = Daemon::start(&dir, &loopback_args(&network));
    let id = first.peer_id.clone();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["identity.key", "api.token"] {
            let mode = std::fs::metadata(dir.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
    assert!(dir.join("api.addr").exists());

    let status = first
        .signal("TERM", Duration::from_secs(5))
        .expect("the node stops within 5 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(
        !dir.join("api.addr").exists(),
        "api.addr is removed on shutdown"
    );

    let mut second = Daemon::start(&dir, &loopback_args(&network));
    assert_eq!(second.peer_id, id);
    let out = second.weft(&["id", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["peer_id"], id.as_str());

    // Ctrl-C (SIGINT) stops it cleanly too.
    let status = second
        .signal("INT", Duration::from_secs(5))
        .expect("the node stops within 5 s of SIGINT");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn help_has_examples() {
    let out = weft_raw(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Examples:"));
    for cmd in ["start", "id", "peers", "dial", "status", "devnet"] {
        let out = weft_raw(&[cmd, "--help"]);
        assert!(out.status.success(), "{cmd} --help");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Example"),
            "{cmd} --help has no examples:\n{text}"
        );
    }
}

#[test]
fn no_node_running_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = crate::support::weft(tmp.path(), &["peers"]);
    assert!(!out.status.success());
    let err = crate::support::stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no running node"), "{err}");
}
