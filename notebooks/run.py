"""Executes every planner notebook (the jupytext percent-format `*.py` files here), every cell,
in a fresh kernel; exits non-zero naming the notebook and cell of the first failure.

    OMNIROUTE_BIN=path/to/omniroute python notebooks/run.py [notebook.py ...]

The notebooks call the `omniroute` CLI (OMNIROUTE_BIN, else `omniroute` on PATH) and write their
results under a temporary folder. scripts/test runs this after the Rust tests.
"""

import pathlib
import sys
import time

import jupytext
import nbclient
from nbclient.exceptions import CellExecutionError

HERE = pathlib.Path(__file__).resolve().parent


def main(paths):
    paths = [pathlib.Path(p) for p in paths] or sorted(HERE.glob("[0-9]*.py"))
    if not paths:
        sys.exit("run.py: no notebooks found")
    for path in paths:
        nb = jupytext.read(path)
        t = time.time()
        client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(HERE)}})
        try:
            client.execute()
        except CellExecutionError as e:
            sys.exit(f"{path.name}: a cell failed:\n{e}")
        cells = sum(1 for c in nb.cells if c.cell_type == "code")
        print(f"{path.name}: {cells} code cells ran in {time.time() - t:.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
