"""Request construction with one name repeated: headers, query and cookies at 8/32/128 KiB.

Run from the repository root::

    python benchmarks/bench_request.py                             # this tree only
    python benchmarks/bench_request.py --compare /path/to/other/src  # and another tree, same run

Each input is one name repeated to the given size: ``("x-a", "b")`` header lines (5 bytes of
name and value each), a query ``a=b&a=b...`` and one ``Cookie: a=b; a=b...`` line. Each source
tree runs in its own child process (so two versions of balancekit never share an interpreter);
the trees are run alternately, and each figure is the best of the repeats, in milliseconds.
Prints a markdown table; with ``--compare``, a ratio column (other / this).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "src"
SIZES_KIB = (8, 32, 128)
CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from balancekit import Request
repeats = int(sys.argv[2])
out = {}
for kib in map(int, sys.argv[3:]):
    size = kib * 1024
    inputs = {
        "headers": {"headers": [("x-a", "b")] * (size // 5)},
        "query": {"query": "&".join(["a=b"] * (size // 4))},
        "cookies": {"headers": [("cookie", "; ".join(["a=b"] * (size // 5)))]},
    }
    for field, options in inputs.items():
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            Request(**options)
            best = min(best, time.perf_counter() - start)
        out[f"{field} {kib}"] = best * 1000
print(json.dumps(out))
"""


def run(src: Path, repeats: int, sizes: tuple[int, ...]) -> dict[str, float]:
    args = [sys.executable, "-c", CHILD, str(src), str(repeats), *map(str, sizes)]
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=1200)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, help="another src/ tree to time in the same run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES_KIB))
    options = parser.parse_args(argv)
    sizes = tuple(options.sizes)
    trees = [HERE] + ([options.compare] if options.compare else [])
    best: list[dict[str, float]] = [{} for _ in trees]
    for _ in range(options.repeats):  # alternate the trees, keep each one's best
        for index, tree in enumerate(trees):
            for key, value in run(tree, 1, sizes).items():
                best[index][key] = min(value, best[index].get(key, float("inf")))
    head = "| input | this tree (ms) |" + (
        " other tree (ms) | other / this |" if len(trees) > 1 else ""
    )
    print(head)
    print("| --- | ---: |" + (" ---: | ---: |" if len(trees) > 1 else ""))
    for key in best[0]:
        field, kib = key.split()
        row = f"| {field}, {kib} KiB | {best[0][key]:.2f} |"
        if len(trees) > 1:
            row += f" {best[1][key]:.2f} | {best[1][key] / best[0][key]:.0f}x |"
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
