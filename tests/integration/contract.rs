//! The API contract: the served OpenAPI document is valid, schemathesis (every check, every
//! phase, the stateful one included) finds nothing against the running server, and a client
//! generated from the document by a standard generator routes an order.
//!
//! The tools are pinned in `tests/contract/requirements.txt`; `scripts/test` installs them
//! (`scripts/setup --contract`) into `~/.cache/omniroute/contract-venv`, or the virtualenv that
//! `OMNIROUTE_CONTRACT_VENV` names. These tests fail, never skip, when the tools are missing.

use crate::server::{spawn_app, TestApp, ADMIN};
use crate::service::send;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn venv_bin(tool: &str) -> PathBuf {
    let venv = std::env::var_os("OMNIROUTE_CONTRACT_VENV").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/omniroute/contract-venv")
    });
    let bin = venv.join("bin").join(tool);
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test, or scripts/setup --contract, which installs the contract tools",
        bin.display()
    );
    bin
}

fn contract_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/contract")
}

fn check(out: Output, what: &str) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// Writes the document the server serves to `dir/openapi.json`.
async fn served_spec(app: &TestApp, dir: &Path) -> PathBuf {
    let r = send("GET", &app.url("/openapi.json"), None, None).await.unwrap();
    assert_eq!(r.status, 200);
    let path = dir.join("openapi.json");
    std::fs::write(&path, &r.body).unwrap();
    path
}

#[actix_rt::test]
async fn the_served_spec_is_valid_and_schemathesis_finds_nothing() {
    let app = spawn_app();
    let tmp = tempfile::tempdir().unwrap();
    let spec = served_spec(&app, tmp.path()).await;
    let out = Command::new(venv_bin("openapi-spec-validator")).arg(&spec).output().unwrap();
    check(out, "openapi-spec-validator");
    let out = Command::new(venv_bin("schemathesis"))
        .arg("--config-file")
        .arg(contract_dir().join("schemathesis.toml"))
        .args(["run", &app.url("/openapi.json"), "--checks", "all", "--no-color"])
        .env("OMNIROUTE_CONTRACT_KEY", ADMIN)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let text = check(out, "schemathesis");
    assert!(text.contains("34/34"), "every operation was tested:\n{text}");
    // The server is still whole after thousands of hostile calls.
    assert_eq!(send("GET", &app.url("/readyz"), None, None).await.unwrap().status, 200);
}

#[actix_rt::test]
async fn a_client_generated_from_the_spec_routes_an_order() {
    let app = spawn_app();
    let tmp = tempfile::tempdir().unwrap();
    let spec = served_spec(&app, tmp.path()).await;
    let out = Command::new(venv_bin("openapi-python-client"))
        .args(["generate", "--meta", "none", "--path"])
        .arg(&spec)
        .arg("--output-path")
        .arg(tmp.path().join("omniroute_client"))
        .arg("--config")
        .arg(contract_dir().join("client-generator.yaml"))
        .output()
        .unwrap();
    check(out, "openapi-python-client generate");
    let out = Command::new(venv_bin("python"))
        .arg(contract_dir().join("client_routes_an_order.py"))
        .args([&app.base, ADMIN])
        .env("PYTHONPATH", tmp.path())
        .output()
        .unwrap();
    let text = check(out, "the generated client");
    assert!(text.contains("routed, read, retried, cancelled"), "{text}");
}
