"""`Scripts/bench --pyperformance`: pyperformance's allocation-heavy benchmarks,
each run alone in one process (`run_benchmark.py --in-process`), under no
profiler, heapsnap (idle, sampling, exact with every native frame, with the
natives below the innermost Python frame and with Python frames only),
tracemalloc and memray (Python frames only, and with native frames).

Every configuration of a benchmark runs interleaved with the others (A B C ...
A B C), and the table gives the whole process's wall time: what a service pays,
start-up included (pyperf's start-up runs `file` a few dozen times, so the cost
of loading the library into short processes shows here too). Loops are
calibrated once per benchmark so that its plain run measures about `--seconds`.
Then the same benchmarks, with a tenth of the loops, are counted in
instructions under callgrind for the plain interpreter, idle and sampling:
wall time on a shared 2-core machine moves by more than those costs.

The virtual environment (pinned pyperformance, pyperf and memray from PyPI)
is made once under .build/bench-venv with Debian's python3, the interpreter
the README's Python figures use.
"""
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PINS = ["pyperformance==1.11.0", "pyperf==2.11.0", "memray==1.20.0"]

# Allocation-heavy benchmarks with no dependency beyond pyperf: containers
# (json, deepcopy, pprint, xml), objects (go, raytrace, deltablue, richards),
# floats and tuples (float, nqueens), and a service's logging.
BENCHMARKS = ["json_loads", "json_dumps", "deepcopy", "go", "logging", "xml_etree",
              "float", "raytrace", "nqueens", "pprint", "deltablue", "richards"]


def venv_python(root):
    """The bench's virtual environment's interpreter, made on first use."""
    venv = os.path.join(root, ".build", "bench-venv")
    python = os.path.join(venv, "bin", "python")
    stamp = os.path.join(venv, "heapsnap-pins")
    if not (os.path.exists(stamp) and open(stamp).read() == " ".join(PINS)):
        shutil.rmtree(venv, ignore_errors=True)
        print("bench: making .build/bench-venv (" + ", ".join(PINS) + ")", file=sys.stderr)
        subprocess.run(["/usr/bin/python3", "-m", "venv", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check"] + PINS, check=True)
        with open(stamp, "w") as f:
            f.write(" ".join(PINS))
    return python


def benchmark_script(python, name):
    out = subprocess.run([python, "-c", "import pyperformance, os; print(os.path.dirname(pyperformance.__file__))"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return os.path.join(out, "data-files", "benchmarks", f"bm_{name}", "run_benchmark.py")


def configurations(python, lib, out_dir):
    """(name, argv prefix before the script, environment) of every configuration."""
    sample = {"LD_PRELOAD": lib, "HEAPSNAP_START": "1", "HEAPSNAP_AT_EXIT": "1", "HEAPSNAP_DIR": out_dir}
    memray = [python, "-m", "memray", "run", "-q", "-f", "-o", os.path.join(out_dir, "memray.bin")]
    return [
        ("plain", [python], {}),
        ("heapsnap idle", [python], {"LD_PRELOAD": lib}),
        ("heapsnap sampling (512 KiB)", [python], sample),
        ("heapsnap exact", [python], dict(sample, HEAPSNAP_RATE="1")),
        ("heapsnap exact, HEAPSNAP_NATIVE=inner", [python], dict(sample, HEAPSNAP_RATE="1", HEAPSNAP_NATIVE="inner")),
        ("heapsnap exact, HEAPSNAP_NATIVE=none", [python], dict(sample, HEAPSNAP_RATE="1", HEAPSNAP_NATIVE="none")),
        ("tracemalloc (1 frame)", [python, "-X", "tracemalloc=1"], {}),
        ("memray", memray, {}),
        ("memray --native", memray + ["--native"], {}),
        ("memray --trace-python-allocators", memray + ["--trace-python-allocators"], {}),
        ("memray --native --trace-python-allocators", memray + ["--native", "--trace-python-allocators"], {}),
    ]


def pyperf_args(loops, output=None):
    args = ["--in-process", "-p", "1", "-n", "1", "-w", "0", "-l", str(loops), "-q"]
    return args + (["-o", output] if output else [])


def run(argv, env, out_dir):
    """Wall seconds of one whole run (the output directory emptied first)."""
    for name in os.listdir(out_dir):
        os.unlink(os.path.join(out_dir, name))
    start = time.perf_counter()
    r = subprocess.run(argv, env=dict(os.environ, **env), cwd=out_dir, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()[-400:]}")
    return seconds


def calibrate(python, script, seconds, out_dir):
    """Loops for about `seconds` of benchmark in the plain interpreter (pyperf's own per-loop times)."""
    result = os.path.join(out_dir, "calibrate.json")
    subprocess.run([python, script] + pyperf_args(1, result), check=True, cwd=out_dir,
                   stdout=subprocess.DEVNULL)
    with open(result) as f:
        suite = json.load(f)
    os.unlink(result)
    per_loop = 0.0
    for bench in suite["benchmarks"]:
        inner = bench.get("metadata", {}).get("inner_loops", suite.get("metadata", {}).get("inner_loops", 1))
        values = [v for r in bench["runs"] for v in r.get("values", [])]
        per_loop += statistics.mean(values) * inner
    return max(1, round(seconds / per_loop))


# Under callgrind: the same addresses (setarch -R) and string hashes
# (PYTHONHASHSEED=0) every run. The shim's tables and the interpreter's dicts
# are keyed by them: with the addresses random, json_loads sampled moved by
# 0.5% between two runs of the same command, with them fixed by 0.04% (the
# sampler's draws).
FIXED_ADDRESSES = ["setarch", os.uname().machine, "-R"] if shutil.which("setarch") else []


def callgrind(argv, env, cwd):
    """Instructions argv executes under callgrind, with fixed addresses and string hashes
    (a workload's own PYTHONHASHSEED kept)."""
    r = subprocess.run(FIXED_ADDRESSES + ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                                          "--trace-children=no"] + argv,
                       env=dict({"PYTHONHASHSEED": "0"}, **env), cwd=cwd, capture_output=True, text=True)
    for line in r.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1].strip())
    raise SystemExit(f"bench: callgrind failed: {r.stderr.strip()[-400:]}")


def without_debug(lib, env):
    """env with lib replaced by a fresh copy without debug info: valgrind cannot read clang's DWARF 5."""
    plain = os.path.join(tempfile.gettempdir(), "heapsnap-bench-nodebug.so")
    subprocess.run(["objcopy", "--strip-debug", lib, plain], check=True)
    return dict(os.environ, **{k: (plain if v == lib else v) for k, v in env.items()})


def instructions(argv, env, lib, out_dir):
    """Instructions of one run under callgrind."""
    return callgrind(argv, without_debug(lib, env), out_dir)


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def main(root, lib, runs, seconds, only, counts, chosen=()):
    python = venv_python(root)
    out_dir = tempfile.mkdtemp(prefix="heapsnap-bench-pp-")
    names = [b for b in BENCHMARKS if not only or any(k in b for k in only)]
    every = configurations(python, lib, out_dir)
    unknown = set(chosen) - {c[0] for c in every}
    if unknown:
        raise SystemExit(f"bench: --config: no configuration named {', '.join(sorted(unknown))} "
                         f"(there are: {', '.join(c[0] for c in every)})")
    configs = [c for c in every if not chosen or c[0] == "plain" or c[0] in chosen]
    wall, loops = {}, {}
    for name in names:
        script = benchmark_script(python, name)
        loops[name] = calibrate(python, script, seconds, out_dir)
        print(f"bench: pyperformance {name}, {loops[name]} loops ...", file=sys.stderr)
        for _ in range(runs):
            for config, prefix, env in configs:
                wall.setdefault((name, config), []).append(run(prefix + [script] + pyperf_args(loops[name]), env, out_dir))
    version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                             check=True, capture_output=True, text=True).stdout.strip()
    print(f"### pyperformance, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {os.uname().machine}, "
          f"Debian's python3 {version}, whole-process wall time, median of {runs} interleaved runs (min-max), "
          f"ratio to plain\n")
    print("Command: `Scripts/bench --pyperformance`\n")
    print("| benchmark | loops | " + " | ".join(c[0] for c in configs) + " |")
    print("|---|---|" + "---|" * len(configs))
    ratios = {c[0]: [] for c in configs}
    for name in names:
        base = statistics.median(wall[(name, "plain")])
        cells = []
        for config, *_ in configs:
            t = wall[(name, config)]
            ratio = statistics.median(t) / base
            ratios[config].append(ratio)
            cells.append(f"{statistics.median(t):.2f} s ({min(t):.2f}-{max(t):.2f})" if config == "plain"
                         else f"{ratio:.2f} ({min(t) / base:.2f}-{max(t) / base:.2f})")
        print(f"| {name} | {loops[name]} | " + " | ".join(cells) + " |")
    print("| geometric mean | | " + " | ".join("1.00" if c == "plain" else f"**{geomean(r):.2f}**"
                                          for c, r in ratios.items()) + " |")
    if counts:
        print("\nInstructions under callgrind (a tenth of the loops), ratio to the plain interpreter:\n")
        print("| benchmark | plain | heapsnap idle | heapsnap sampling (512 KiB) |")
        print("|---|---|---|---|")
        three = every[:3]                   # plain, idle, sampling, whatever --config chose
        counted = {c[0]: [] for c in three}
        for name in names:
            script = benchmark_script(python, name)
            argv_loops = pyperf_args(max(1, loops[name] // 10))
            n = [instructions(prefix + [script] + argv_loops, env, lib, out_dir) for _, prefix, env in three]
            for (config, *_), value in zip(three, n):
                counted[config].append(value / n[0])
            print(f"| {name} | {n[0]:,} | {n[1] / n[0]:.4f} | {n[2] / n[0]:.4f} |")
        print("| geometric mean | | " + " | ".join(f"**{geomean(counted[c[0]]):.4f}**" for c in three[1:]) + " |")
    shutil.rmtree(out_dir, ignore_errors=True)
