use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_omniroute"))
}

/// Runs the binary with `args` and optional standard input.
pub fn run(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = bin()
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    if let Some(text) = stdin {
        child.stdin.take().expect("piped").write_all(text.as_bytes()).expect("stdin written");
    }
    child.wait_with_output().expect("binary finishes")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A small generated dataset in a fresh temporary directory.
pub struct Dataset {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

pub fn small_dataset(seed: u64) -> Dataset {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    let seed = seed.to_string();
    let out = run(
        &[
            "generate",
            "--stores",
            "300",
            "--skus",
            "40",
            "--skus-per-store",
            "15",
            "--orders",
            "800",
            "--seed",
            &seed,
            "--out",
            dir.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "generate failed: {}", stderr(&out));
    Dataset { _tmp: tmp, dir }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).expect("readable")
}
