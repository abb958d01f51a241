//! The HTTP API's written contract, `docs/openapi.json`, checked against the real server by two
//! outside tools: Schemathesis (every check it has, on every operation, with generated valid and
//! invalid requests) and REDbot (HTTP itself: dates, caching, validators, framing).
//!
//! Both come from PyPI, pinned in `tests/contract/requirements.txt` and installed by
//! `tests/contract/setup` into `target/contract-venv` (`WALKV_CONTRACT_VENV` sets another
//! place). Without them these tests say "skipped", unless `WALKV_REQUIRE_CONTRACT` is set, as
//! `.ci/run` sets it after running the setup. `WALKV_CONTRACT_EXAMPLES` sets how many
//! requests Schemathesis generates per operation and phase (default 30).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::{Server, request};
use walkv::testutil::{TempDir, knob};

const TOKEN: &str = "contract-test-token";

/// The virtual environment holding the tools, if it is there.
fn venv() -> Option<PathBuf> {
    let dir = std::env::var_os("WALKV_CONTRACT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/contract-venv"));
    if dir.join("bin/st").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("WALKV_REQUIRE_CONTRACT").is_none(),
        "WALKV_REQUIRE_CONTRACT is set but {} has no Schemathesis: run tests/contract/setup",
        dir.display()
    );
    eprintln!("skipped: no {} (run tests/contract/setup to check the contract)", dir.display());
    None
}

fn contract_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract")
}

/// Schemathesis, all checks, against a server that requires a token (so that the check that
/// a request without it is refused runs too).
#[test]
fn schemathesis_finds_nothing_the_contract_does_not_say() {
    let Some(venv) = venv() else { return };
    let dir = TempDir::new("contract-st");
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let data = dir.join("data");
    let server = Server::start_with(&data, &["--auth-token-file", token_file.to_str().unwrap()]);
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let examples = knob("WALKV_CONTRACT_EXAMPLES", 30).to_string();
    let out = Command::new(venv.join("bin/st"))
        .arg("--config-file")
        .arg(contract_dir().join("schemathesis.toml"))
        .arg("run")
        .arg(&spec)
        .args(["--url", &format!("http://{}", server.addr)])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--checks", "all", "--generation-codec", "ascii"])
        .args(["--max-examples", &examples, "--request-timeout", "30", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", contract_dir())
        .current_dir(&dir)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.contains("No issues found"),
        "Schemathesis found a disagreement between the server and docs/openapi.json:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every operation of the file was tested, none only skipped.
    let operations = report.lines().find(|l| l.trim_start().starts_with("Tested:"));
    assert_eq!(operations.map(str::trim), Some("Tested: 30"), "{report}");
}

/// REDbot on the requests a curl user makes: no error and no warning. (Its "info" notes, such
/// as "this response can't be stored by caches", describe choices docs/api.md explains.)
#[test]
fn redbot_has_no_errors_or_warnings() {
    let Some(venv) = venv() else { return };
    let dir = TempDir::new("contract-redbot");
    let server = Server::start(&dir);
    let a = &server.addr;
    assert_eq!(request(a, "PUT", "/v1/k", b"hello").unwrap().status, 201);
    for (method, path, body) in [
        ("GET", "/v1/k", ""),
        ("HEAD", "/v1/k", ""),
        ("GET", "/v1/k?raw", ""),
        ("PUT", "/v1/k", "hello again"),
        ("DELETE", "/v1/k", ""),
        ("GET", "/v1/k", ""), // a 404
        ("GET", "/livez", ""),
        ("GET", "/metrics", ""),
    ] {
        let out = Command::new(venv.join("bin/python"))
            .arg(contract_dir().join("redbot_check.py"))
            .args([method, &format!("http://{a}{path}"), body])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let notes: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert!(notes.iter().any(|n| n["level"] == "status"), "{method} {path}: {notes:?}");
        let complaints: Vec<_> =
            notes.iter().filter(|n| n["level"] == "bad" || n["level"] == "warning").collect();
        assert!(complaints.is_empty(), "REDbot on {method} {path}: {complaints:?}");
    }
}
