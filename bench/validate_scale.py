"""Benchmark: how `validate` and the compiler scale, and how fast `validate` starts.

1. Compile time (load + schema + semantic checks + plan) of generated runbooks of
   100, 1,000 and 10,000 steps, best of several runs; the 10k/1k ratio should be
   <= 12 (linear growth).
2. Wall time of `qlrf-run validate FILE` against `check-jsonschema --schemafile
   schemas/runbook.schema.json FILE` on the same small file, alternated in one run
   so that machine noise hits both alike; the goal is a ratio <= 1.0.

Run: .venv/bin/python bench/validate_scale.py [--rounds N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def generate(steps: int) -> str:
    """A runbook of `steps` steps: mostly a chain, with some fan-in and templates."""
    lines = [
        "apiVersion: qlrf/v1",
        "kind: Runbook",
        f"name: generated-{steps}",
        "inputs:",
        "  region: {type: string, default: us-west-2}",
        "  attempts: {type: integer, default: 3}",
        "defaults:",
        "  retry: {max_attempts: 3}",
        "  timeout: 10m",
        "steps:",
    ]
    for i in range(steps):
        kind = i % 4
        lines.append(f"  - id: s{i}")
        lines.append(f"    name: Step {i}")
        if kind == 0:
            lines.append("    type: shell")
            lines.append(f'    with: {{command: [echo, "{{{{ inputs.region }}}}", "{i}"]}}')
        elif kind == 1:
            lines.append("    type: http")
            ref = f"s{i - 1}"
            lines.append(f'    with: {{url: "http://127.0.0.1/{{{{ steps.{ref}.status }}}}"}}')
            lines.append("    retry: {max_attempts: 5, initial_interval: 2s}")
        elif kind == 2:
            lines.append("    type: assert")
            lines.append(
                f'    with: {{that: "{{{{ steps.s{i - 1}.attempts <= inputs.attempts }}}}"}}'
            )
        else:
            lines.append("    type: sleep")
            needs = [f"s{i - 1}"] + ([f"s{i - 3}"] if i >= 3 else [])
            lines.append(f"    needs: [{', '.join(needs)}]")
            lines.append("    with: {duration: 1s}")
    return "\n".join(lines) + "\n"


def compile_once(path: Path) -> float:
    from runner.dsl.validate import collector_paused, default_validator
    from runner.plan.compiler import compile_plan

    validator = default_validator()
    started = time.perf_counter()
    # As `qlrf-run plan` does: check, then compile, with the cyclic collector paused.
    with collector_paused():
        checked = validator.check_file(path)
        assert checked.ok, [d.text() for d in checked.diagnostics[:3]]
        compile_plan(validator.registry, checked.doc.data, str(path), lambda p: "1:1")
    return time.perf_counter() - started


def bench_scale(directory: Path, rounds: int) -> dict[int, float]:
    results = {}
    for size in (100, 1_000, 10_000):
        path = directory / f"gen-{size}.yaml"
        path.write_text(generate(size))
        runs = max(2, rounds if size < 10_000 else rounds // 2)
        results[size] = min(compile_once(path) for _ in range(runs))
    return results


def wall(cmd: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stdout + result.stderr
    return elapsed


def bench_startup(rounds: int) -> tuple[float, float]:
    bin_dir = Path(sys.executable).parent
    ours = [str(bin_dir / "qlrf-run"), "validate", str(ROOT / "examples" / "drill.yaml")]
    cj = shutil.which("check-jsonschema", path=str(bin_dir)) or "check-jsonschema"
    theirs = [
        cj,
        "--schemafile",
        str(ROOT / "schemas" / "runbook.schema.json"),
        str(ROOT / "examples" / "drill.yaml"),
    ]
    wall(ours), wall(theirs)  # warm the file cache for both
    a, b = [], []
    for _ in range(rounds):
        a.append(wall(ours))
        b.append(wall(theirs))
    return statistics.median(a), statistics.median(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scale = bench_scale(Path(tmp), args.rounds)
    print("compile time (load + schema + checks + plan), best of runs:")
    for size, seconds in scale.items():
        print(f"  {size:>6} steps: {seconds * 1000:9.1f} ms  ({seconds / size * 1e6:6.1f} us/step)")
    ratio = scale[10_000] / scale[1_000]
    print(f"  ratio 10k/1k: {ratio:.2f}  (goal <= 12: {'met' if ratio <= 12 else 'NOT met'})")
    ours, theirs = bench_startup(args.rounds)
    print(f"validate wall time on examples/drill.yaml, median of {args.rounds}, alternated:")
    print(f"  qlrf-run validate: {ours * 1000:7.1f} ms")
    print(f"  check-jsonschema : {theirs * 1000:7.1f} ms")
    print(
        f"  ratio ours/theirs: {ours / theirs:.2f}  (goal <= 1.0: "
        f"{'met' if ours / theirs <= 1.0 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
