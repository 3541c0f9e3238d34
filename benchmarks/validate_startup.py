"""`hybridc validate specs/three-way.yaml` in a fresh process: wall time against `python -c pass` in the same run.

    python benchmarks/validate_startup.py [--repeat 21] [--against DIR] [--write benchmarks/README.md]

``--against DIR``: also time `validate` with the hybridc package of another checkout (``DIR`` holds its
``hybridc/``, e.g. ``git archive REV hybridc | tar -x -C DIR``) and of this one, both as ``python -S -m hybridc``
(an editable install's finder answers ``import hybridc`` before any path), run alternately with the rest: before
and after a change under the same load.

The goal (issue 36): at most 0.3 s on 2 cores. Other processes load the machines this runs on, so each command
runs alternately with its reference (`python -c pass`, and `python -c "import hybridc.cli"`: the start-up of
the front end alone), and the table gives the median and the minimum of each, their ratio to `python -c pass`,
and the load average during the run; the minimum is the run least disturbed by other processes. Bytecode is
written and warmed first, as an installed package has it (`pip install` compiles it; a checkout run with
`PYTHONDONTWRITEBYTECODE=1` would compile every module on every start).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from report import write_section

ROOT = Path(__file__).resolve().parents[1]
GOAL = 0.3  # seconds, on 2 cores


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=env.get("BENCH_CWD", ROOT), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.decode()[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--write", type=Path, help="replace the validate-startup table in this Markdown file")
    parser.add_argument("--against", type=Path, help="a checkout whose hybridc package to time as well")
    args = parser.parse_args()
    py = sys.executable
    script = Path(py).with_name("hybridc")  # the console script users run
    cli = [str(script)] if script.exists() else [py, "-m", "hybridc"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    rows = {
        "python -c pass (reference)": ([py, "-c", "pass"], env),
        "python -c 'import hybridc.cli' (the front end's imports)": ([py, "-c", "import hybridc.cli"], env),
        "hybridc validate specs/three-way.yaml": (cli + ["validate", "specs/three-way.yaml"], env),
    }
    if args.against is not None:
        # An editable install's finder would answer `import hybridc` before any path: both checkouts are run
        # without site (`python -S`), each with its own package and the installed dependencies on the path.
        import sysconfig

        packages = sysconfig.get_paths()["purelib"]
        for label, where in (("this checkout", ROOT), (args.against.name, args.against.resolve())):
            # (run outside both checkouts: `-m` puts the working directory first on the path)
            path_env = {**env, "PYTHONPATH": f"{where}{os.pathsep}{packages}", "BENCH_CWD": str(ROOT / "benchmarks")}
            rows[f"python -S -m hybridc validate specs/three-way.yaml ({label})"] = (
                [py, "-S", "-m", "hybridc", "validate", str(ROOT / "specs" / "three-way.yaml")], path_env)
    for cmd, cmd_env in rows.values():  # bytecode written and the files in the page cache
        for _ in range(2):
            timed(cmd, cmd_env)
    loads = [os.getloadavg()[0]]
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.repeat):
        for name, (cmd, cmd_env) in rows.items():  # alternately: each sees the same load
            times[name].append(timed(cmd, cmd_env))
    loads.append(os.getloadavg()[0])
    base = statistics.median(times["python -c pass (reference)"])
    base_min = min(times["python -c pass (reference)"])
    lines = ["| command | median (s) | min (s) | median x `python -c pass` | min x `python -c pass` |",
             "|---|---:|---:|---:|---:|"]
    for name, values in times.items():
        med, low = statistics.median(values), min(values)
        lines.append(f"| `{name}` | {med:.3f} | {low:.3f} | {med / base:.1f} | {low / base_min:.1f} |")
    validate = times["hybridc validate specs/three-way.yaml"]
    verdict = "met" if min(validate) <= GOAL else "not met"
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {args.repeat} runs "
               f"each, alternately; load average {loads[0]:.1f} at the start, {loads[-1]:.1f} at the end")
    table = "\n".join(lines) + (f"\n\nGoal: validate in at most {GOAL} s on 2 cores: {verdict} by the least disturbed "
                                f"run ({min(validate):.3f} s; median {statistics.median(validate):.3f} s under the "
                                f"load).\n\nMachine: {machine}.\n")
    print(table)
    if args.write:
        write_section(args.write, "validate-startup", "`hybridc validate` in a fresh process", table)


if __name__ == "__main__":
    main()
