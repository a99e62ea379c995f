"""The few helpers the planner notebooks share: run the `omniroute` CLI and read its JSON."""

import json
import os
import pathlib
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
SCENARIOS = ROOT / "scenarios"


def binary():
    """The omniroute binary: OMNIROUTE_BIN, else the release build, else `omniroute` on PATH."""
    if os.environ.get("OMNIROUTE_BIN"):
        return os.environ["OMNIROUTE_BIN"]
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/omniroute/target"))
    for build in ("release", "debug"):
        if (target / build / "omniroute").exists():
            return str(target / build / "omniroute")
    return "omniroute"


def omniroute(*args):
    """Runs `omniroute ARGS`; returns its standard output, raising with its errors on failure."""
    p = subprocess.run([binary(), *map(str, args)], capture_output=True, text=True, env={**os.environ, "RUST_LOG": "warn"})
    if p.returncode != 0:
        raise RuntimeError(f"omniroute {' '.join(map(str, args))} failed:\n{p.stderr}")
    return p.stdout


def workdir(name):
    """A fresh folder for a notebook's results."""
    return pathlib.Path(tempfile.mkdtemp(prefix=f"omniroute-{name}-"))


def read_json(path):
    with open(path) as f:
        return json.load(f)
