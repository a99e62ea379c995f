//! `spawn_app()`: the real `omniroute serve` process on port 0 with a temporary state directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const ADMIN: &str = "admin-test-key";
pub const CHECKOUT: &str = "checkout-test-key";
pub const STORE_SYSTEM: &str = "store-system-test-key";
pub const PLANNER: &str = "planner-test-key";
/// A store-system key scoped to brands 1 and 2 of the sample.
pub const SCOPED_STORE_SYSTEM: &str = "scoped-store-system-key";
pub const MARKETING: &str = "marketing-test-key";
/// A marketing key scoped to brand 1 of the sample.
pub const SCOPED_MARKETING: &str = "scoped-marketing-key";
/// The coupon signing keys every test server gets.
pub const COUPON_KEYS: &str = "7:coupon-test-secret-0123456789abcdefghij";

/// The bundled sample dataset.
pub fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/sample")
}

/// The second sample: text ids (city names with spaces and umlauts), German cities, Berlin time.
pub fn sample_de() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/sample_de")
}

pub struct TestApp {
    child: Option<Child>,
    pub base: String,
    pub state: tempfile::TempDir,
    pub data: PathBuf,
    extra: Vec<String>,
}

fn start(data: &Path, state: &Path, extra: &[String]) -> (Child, String) {
    let log = std::fs::File::create(state.join("server.log")).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_omniroute"))
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "2", "--cost", "great-circle"])
        .arg("--data")
        .arg(data)
        .arg("--state")
        .arg(state.join("db"))
        .args(extra)
        .env(
            "OMNIROUTE_API_KEYS",
            format!(
                "admin:{ADMIN},checkout:{CHECKOUT},store-system:{STORE_SYSTEM},planner:{PLANNER},\
                 store-system[1|2]:{SCOPED_STORE_SYSTEM},marketing:{MARKETING},marketing[1]:{SCOPED_MARKETING}"
            ),
        )
        .env("OMNIROUTE_COUPON_KEYS", COUPON_KEYS)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("server starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let line = lines.next().expect("server prints its address").expect("readable");
    let base = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    (child, base)
}

impl TestApp {
    /// Kills the server with SIGKILL (no shutdown, no flush).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server as an operator would (SIGINT) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            std::process::Command::new("kill").args(["-INT", &c.id().to_string()]).status().unwrap();
            let status = c.wait().unwrap();
            assert!(status.success(), "the server exits cleanly on SIGINT: {status}");
        }
    }

    /// Starts a new server process on the same data and state directory.
    pub fn restart(&mut self) {
        self.kill();
        let (child, base) = start(&self.data, self.state.path(), &self.extra);
        self.child = Some(child);
        self.base = base;
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `omniroute serve` on the sample data with a fresh state directory.
pub fn spawn_app() -> TestApp {
    spawn_app_with(&sample(), &[])
}

pub fn spawn_app_with(data: &Path, extra: &[&str]) -> TestApp {
    let state = tempfile::tempdir().expect("temp dir");
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let (child, base) = start(data, state.path(), &extra);
    TestApp { child: Some(child), base, state, data: data.to_path_buf(), extra }
}
