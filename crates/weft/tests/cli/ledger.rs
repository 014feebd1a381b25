//! The ledger commands that need no node: wallets, `genesis new`, and the
//! argument checks `send` makes before it contacts the API.

use std::{path::Path, process::Output};

use serde_json::Value;

use crate::support::{stderr, weft};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "failed: {}", stderr(&out));
    out
}

fn json(out: Output) -> Value {
    let out = ok(out);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

/// Exit code 1, one line on stderr mentioning `needle`, nothing on stdout.
fn assert_one_line_error(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{err}");
    assert!(
        lines[0].to_lowercase().contains(&needle.to_lowercase()),
        "{:?} does not mention {needle:?}",
        lines[0]
    );
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(out));
}

fn new_wallet(dir: &Path, name: &str) -> String {
    let v = json(weft(dir, &["--json", "wallet", "new", "--name", name]));
    assert_eq!(v["name"], name);
    v["address"].as_str().unwrap().to_owned()
}

#[test]
fn wallet_new_list_address_export_import() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");

    // The default name, in text.
    let out = ok(weft(&a, &["wallet", "new"]));
    let text = stdout(&out);
    assert!(text.contains("default"), "{text}");
    let default_addr = ok(weft(&a, &["wallet", "address"]));
    let default_addr = stdout(&default_addr).trim().to_owned();
    assert!(default_addr.starts_with("weft1"), "{default_addr}");
    assert!(text.contains(&default_addr), "{text}");

    let savings = new_wallet(&a, "savings");
    assert_ne!(savings, default_addr);
    // Never overwritten.
    let out = weft(&a, &["wallet", "new", "--name", "savings"]);
    assert_one_line_error(&out, "already exists");
    let out = weft(&a, &["wallet", "new", "--name", "no/slash"]);
    assert_one_line_error(&out, "invalid wallet name");

    let list = json(weft(&a, &["--json", "wallet", "list"]));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "savings"]);
    let text = stdout(&ok(weft(&a, &["wallet", "list"])));
    assert!(
        text.contains(&savings) && text.contains(&default_addr),
        "{text}"
    );
    let v = json(weft(&a, &["--json", "wallet", "address", "savings"]));
    assert_eq!(v["address"], savings.as_str());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&a.join("wallets/savings.key")), 0o600);
        assert_eq!(mode(&a.join("wallets/default.key")), 0o600);
        assert_eq!(mode(&a.join("wallets")), 0o700);
    }

    // Export needs --yes, and prints nothing secret without it.
    let out = weft(&a, &["wallet", "export", "savings"]);
    assert_one_line_error(&out, "--yes");
    let out = ok(weft(&a, &["wallet", "export", "savings", "--yes"]));
    let exported: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(exported["name"], "savings");
    assert_eq!(exported["address"], savings.as_str());
    assert_eq!(exported["secret"].as_str().unwrap().len(), 64);

    // Import on another data dir gives the same address, under the same name.
    let file = tmp.path().join("savings.key");
    std::fs::write(&file, &out.stdout).unwrap();
    let v = json(weft(
        &b,
        &["--json", "wallet", "import", file.to_str().unwrap()],
    ));
    assert_eq!(v["name"], "savings");
    assert_eq!(v["address"], savings.as_str());
    // The only wallet is the default one.
    let only = stdout(&ok(weft(&b, &["wallet", "address"])));
    assert_eq!(only.trim(), savings);
    let again = ok(weft(&b, &["wallet", "export", "--yes"]));
    assert_eq!(again.stdout, out.stdout);
    // A second import of the same name is refused; another name is fine.
    let out = weft(&b, &["wallet", "import", file.to_str().unwrap()]);
    assert_one_line_error(&out, "already exists");
    let seed = tmp.path().join("seed.hex");
    std::fs::write(&seed, exported["secret"].as_str().unwrap()).unwrap();
    let v = json(weft(
        &b,
        &[
            "--json",
            "wallet",
            "import",
            seed.to_str().unwrap(),
            "--name",
            "copy",
        ],
    ));
    assert_eq!(v["address"], savings.as_str());
    // Two wallets, none named default: the error says which exist.
    let out = weft(&b, &["wallet", "address"]);
    assert_one_line_error(&out, "copy, savings");
}

#[test]
fn wallet_errors_are_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = weft(tmp.path(), &["wallet", "address"]);
    assert_one_line_error(&out, "weft wallet new");
    let out = weft(tmp.path(), &["wallet", "export", "nobody", "--yes"]);
    assert_one_line_error(&out, "no wallet named");
    let junk = tmp.path().join("junk.key");
    std::fs::write(&junk, "not a key").unwrap();
    let out = weft(tmp.path(), &["wallet", "import", junk.to_str().unwrap()]);
    assert_one_line_error(&out, "junk.key");
    // A corrupt key file is reported and left as it is.
    let key = tmp.path().join("wallets/default.key");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::write(&key, "garbage").unwrap();
    let out = weft(tmp.path(), &["wallet", "list"]);
    assert_one_line_error(&out, "corrupt");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "garbage");
}

#[test]
fn genesis_new_prints_the_hash_of_the_file_it_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let alice = new_wallet(tmp.path(), "alice");
    let bob = new_wallet(tmp.path(), "bob");
    let file = tmp.path().join("genesis.json");
    let out = ok(weft(
        tmp.path(),
        &[
            "genesis",
            "new",
            "--alloc",
            &format!("{alice}=1000000"),
            "--alloc",
            &format!("{bob}=5"),
            "--block-interval",
            "2s",
            "--difficulty",
            "1024",
            "--name",
            "test net",
            "-o",
            file.to_str().unwrap(),
        ],
    ));
    let genesis = weft_ledger::Genesis::read(&file).unwrap();
    assert_eq!(genesis.alloc.len(), 2);
    assert_eq!(genesis.alloc[0].address.to_string(), alice);
    assert_eq!(genesis.alloc[0].amount, 1_000_000);
    assert_eq!(genesis.block_interval_ms, 2000);
    assert_eq!(genesis.difficulty, 1024);
    assert_eq!(genesis.reward, 5_000_000_000);
    assert_eq!(genesis.name, "test net");
    let hash = genesis.hash().to_string();
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l == format!("genesis hash: {hash}")),
        "{text}"
    );

    // Not replaced without --force; the JSON output has the same hash.
    let out = weft(
        tmp.path(),
        &["genesis", "new", "-o", file.to_str().unwrap()],
    );
    assert_one_line_error(&out, "--force");
    let v = json(weft(
        tmp.path(),
        &[
            "--json",
            "genesis",
            "new",
            "--force",
            "-o",
            file.to_str().unwrap(),
        ],
    ));
    let genesis = weft_ledger::Genesis::read(&file).unwrap();
    assert_eq!(v["hash"], genesis.hash().to_string());
    assert!(genesis.alloc.is_empty());
    assert_eq!(genesis.block_interval_ms, 10_000);
    assert_eq!(genesis.difficulty, 1_048_576);
}

#[test]
fn genesis_new_rejects_a_bad_allocation() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("genesis.json");
    let f = file.to_str().unwrap();
    let out = weft(
        tmp.path(),
        &["genesis", "new", "--alloc", "weft1notanaddress=5", "-o", f],
    );
    assert_one_line_error(&out, "not a weft address");
    assert!(!file.exists());
    let addr = new_wallet(tmp.path(), "x");
    let out = weft(tmp.path(), &["genesis", "new", "--alloc", &addr, "-o", f]);
    assert_one_line_error(&out, "ADDRESS=AMOUNT");
    let dup = format!("{addr}=1");
    let out = weft(
        tmp.path(),
        &["genesis", "new", "--alloc", &dup, "--alloc", &dup, "-o", f],
    );
    assert_one_line_error(&out, "allocated twice");
    let out = weft(
        tmp.path(),
        &["genesis", "new", "--block-interval", "2h", "-o", f],
    );
    assert_one_line_error(&out, "--block-interval");
    assert!(!file.exists());
}

#[test]
fn send_checks_its_arguments_before_contacting_a_node() {
    let tmp = tempfile::tempdir().unwrap();
    // No node runs for this data dir, and none is needed to refuse these.
    let to = new_wallet(tmp.path(), "bob");
    let out = weft(tmp.path(), &["send", "weft1notanaddress", "100"]);
    assert_one_line_error(&out, "not a weft address");
    let out = weft(tmp.path(), &["send", &to, "0"]);
    assert_one_line_error(&out, "more than zero");
    let out = weft(tmp.path(), &["send", &to, "-5"]);
    assert_one_line_error(&out, "whole number");
    let memo = "x".repeat(300);
    let out = weft(tmp.path(), &["send", &to, "5", "--memo", &memo]);
    assert_one_line_error(&out, "memo");
    let out = weft(tmp.path(), &["send", &to, "5", "--from", "nobody"]);
    assert_one_line_error(&out, "no wallet named");
    // Only bob exists, so bob would pay himself.
    let out = weft(tmp.path(), &["send", &to, "5"]);
    assert_one_line_error(&out, "another recipient");
    // Well-formed: now it needs a node, and says so.
    new_wallet(tmp.path(), "default");
    let out = weft(tmp.path(), &["send", &to, "5"]);
    assert_one_line_error(&out, "no running node");

    let out = weft(tmp.path(), &["tx", "nothex"]);
    assert_one_line_error(&out, "transaction id");
    let out = weft(tmp.path(), &["block", "tip"]);
    assert_one_line_error(&out, "block height");
    let out = weft(tmp.path(), &["balance", "weft1notanaddress"]);
    assert_one_line_error(&out, "not a weft address");
}

#[test]
fn ledger_help_has_examples() {
    let tmp = tempfile::tempdir().unwrap();
    for cmd in [
        &["wallet", "--help"][..],
        &["wallet", "new", "--help"],
        &["wallet", "list", "--help"],
        &["wallet", "address", "--help"],
        &["wallet", "import", "--help"],
        &["wallet", "export", "--help"],
        &["genesis", "new", "--help"],
        &["balance", "--help"],
        &["send", "--help"],
        &["tx", "--help"],
        &["chain", "--help"],
        &["block", "--help"],
    ] {
        let out = ok(weft(tmp.path(), cmd));
        let text = stdout(&out);
        assert!(text.contains("Example"), "{cmd:?} has no examples:\n{text}");
    }
}
