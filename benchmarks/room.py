"""A room of learners on one machine: N kernels at once, each the whole learning path then lab clicks.

    python benchmarks/room.py                 # 20 seats, 50 clicks each (heavy: minutes on 2 cores)
    python benchmarks/room.py --seats 2 --clicks 10     # a quick check of the benchmark itself

Every seat is one IPython kernel (jupyter_client, as a JupyterLab server starts them), started
at the same moment as all the others. Each seat executes every code cell of the shipped
notebooks in learning-path order (00 ... 09-exercises, then 09-solutions), as "Run All" would,
then builds the OS Lock lab and clicks it ``--clicks`` times, cycling through the controls a
learner uses (toggle OSLK, step, read OSLSR_EL1, run to next entry/exit, vcpu_put). A click is
one ``execute`` round trip from this process to the kernel, which includes the widget callback
and the redraw of its table and chart: what a browser's click waits for, minus the browser.

Reported: completion (every cell ran without error, every click's effect is seen in the model
and no error reached the lab's error box), memory per kernel (RSS and USS after the clicks,
and the peak RSS sampled during the run), click latency p50/p95 under this load, and how many
seats one 24 GiB host holds. The seat estimate adds one JupyterLab single-user server per seat
(its RSS is measured here on a started server) and keeps 2 GiB for the OS and the hub.

Not a test: nothing in the test suite depends on these timings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PATH_ORDER = ["00-welcome", "01-baseline", "02-patch1", "03-patch2", "04-patch3", "05-world-switch",
              "06-guest-view", "07-userspace", "08-upstream", "09-exercises", "09-solutions"]
HOST_GIB = 24
RESERVED_GIB = 2

# The controls of kvmdbg.teach.widgets.OSLockLab a learner clicks, in turn. Each click prints one
# JSON line: the seconds the callback took inside the kernel, whether the model saw it, and the
# lab's error box.
SETUP = """
import json as _json, time as _time
import kvmdbg as _kvmdbg
_lab = _kvmdbg.lab("p2")
_clicks = 0
def _click(kind):
    global _clicks
    before = len(_lab.machine.trace) + _lab.machine.trace.dropped
    t0 = _time.perf_counter()
    if kind == "oslk":
        want = not _lab.oslk.value
        _lab.oslk.value = want
        seen = _lab.oslk.value == want
    else:
        getattr(_lab, kind + "_button").click()
        seen = True
    dt = _time.perf_counter() - t0
    after = len(_lab.machine.trace) + _lab.machine.trace.dropped
    _clicks += 1
    print(_json.dumps({"inside": dt, "seen": bool(seen), "events": after - before, "error": _lab.error.value}))
"""
CLICKS = ["oslk", "step", "read", "run", "put"]


@dataclass
class Seat:
    index: int
    cells_ok: int = 0
    cells_failed: list[str] = field(default_factory=list)
    clicks: list[float] = field(default_factory=list)  # round trip seconds
    inside: list[float] = field(default_factory=list)  # callback seconds inside the kernel
    click_problems: list[str] = field(default_factory=list)
    path_seconds: float = 0.0
    rss: int = 0
    uss: int = 0
    peak_rss: int = 0
    pid: int = 0
    error: str = ""


def code_cells() -> list[tuple[str, str]]:
    cells = []
    for name in PATH_ORDER:
        nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] == "code":
                cells.append((f"{name}[{i}]", "".join(cell["source"])))
    return cells


def run_code(client, code: str, timeout: float) -> tuple[bool, str, list[str]]:
    """Execute; (ok, error text, stdout lines)."""
    out: list[str] = []
    err: list[str] = []

    def hook(msg):  # noqa: ANN001
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content.get("name") == "stdout":
            out.append(content["text"])
        elif kind == "error":
            err.append(f"{content['ename']}: {content['evalue']}")

    reply = client.execute_interactive(code, timeout=timeout, output_hook=hook, allow_stdin=False)
    ok = reply["content"]["status"] == "ok"
    return ok, "; ".join(err), "".join(out).splitlines()


def run_seat(seat: Seat, cells: list[tuple[str, str]], clicks: int, start: threading.Barrier, env: dict[str, str],
             timeout: float) -> None:
    km = KernelManager(kernel_name="python3")
    try:
        start.wait()  # all kernels start at the same moment
        km.start_kernel(env=env, cwd=str(NOTEBOOKS))
        seat.pid = km.provisioner.pid if hasattr(km.provisioner, "pid") else 0
        client = km.client()
        client.start_channels()
        client.wait_for_ready(timeout=timeout)
        t0 = time.perf_counter()
        for where, code in cells:
            ok, why, _ = run_code(client, code, timeout)
            if ok:
                seat.cells_ok += 1
            else:
                seat.cells_failed.append(f"{where}: {why}")
        seat.path_seconds = time.perf_counter() - t0
        ok, why, _ = run_code(client, SETUP, timeout)
        if not ok:
            raise RuntimeError(f"lab setup failed: {why}")
        for n in range(clicks):
            kind = CLICKS[n % len(CLICKS)]
            t = time.perf_counter()
            ok, why, lines = run_code(client, f"_click({kind!r})", timeout)
            seat.clicks.append(time.perf_counter() - t)
            if not ok or not lines:
                seat.click_problems.append(f"click {n} ({kind}): {why or 'no output'}")
                continue
            result = json.loads(lines[-1])
            seat.inside.append(result["inside"])
            if not result["seen"] or result["error"]:
                seat.click_problems.append(f"click {n} ({kind}): seen={result['seen']} error={result['error']!r}")
        ok, why, lines = run_code(client, "print(_clicks)", timeout)
        if not ok or lines[-1:] != [str(clicks)]:
            seat.click_problems.append(f"the kernel counted {lines[-1:] or why} clicks, not {clicks}")
        proc = psutil.Process(seat.pid) if seat.pid else None
        if proc is not None:
            info = proc.memory_full_info()
            seat.rss, seat.uss = info.rss, info.uss
        client.stop_channels()
    except Exception as e:  # a benchmark reports every failure instead of stopping the room
        seat.error = f"{type(e).__name__}: {e}"
    finally:
        try:
            km.shutdown_kernel(now=False)
        except Exception as e:  # noqa: BLE001 - report, keep shutting the others down
            seat.error = seat.error or f"shutdown: {e}"


def sample_peaks(seats: list[Seat], stop: threading.Event) -> None:
    while not stop.is_set():
        for s in seats:
            if s.pid:
                try:
                    s.peak_rss = max(s.peak_rss, psutil.Process(s.pid).memory_info().rss)
                except psutil.Error:
                    pass
        stop.wait(1.0)


def lab_server_rss() -> int:
    """RSS of one idle JupyterLab server (what a hub's single-user server costs besides its kernel)."""
    import secrets

    sys.path.insert(0, str(ROOT))
    from kvmdbg.servers import LocalServer, free_port, lab_command, private_jupyter_home

    with tempfile.TemporaryDirectory(prefix="kvmdbg-room-") as tmp:
        home = Path(tmp)
        env = private_jupyter_home(home, NOTEBOOKS, pythonpath=ROOT)
        port, token = free_port(), secrets.token_hex(16)
        with LocalServer("JupyterLab", lab_command(port, token, home / "notebooks", home, allow_root=os.geteuid() == 0),
                         port=port, token=token, log=home / "lab.log", env=env) as server:
            time.sleep(2)
            assert server.proc is not None
            return int(psutil.Process(server.proc.pid).memory_info().rss)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seats", type=int, default=20)
    ap.add_argument("--clicks", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per cell or click")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    cells = code_cells()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("MPLBACKEND", None)
    seats = [Seat(i) for i in range(args.seats)]
    barrier = threading.Barrier(args.seats)
    stop = threading.Event()
    sampler = threading.Thread(target=sample_peaks, args=(seats, stop), daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=run_seat, args=(s, cells, args.clicks, barrier, env, args.timeout))
               for s in seats]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    stop.set()
    server = lab_server_rss()

    complete = [s for s in seats if not s.error and not s.cells_failed and not s.click_problems
                and len(s.clicks) == args.clicks]
    clicks = [c for s in seats for c in s.clicks]
    inside = [c for s in seats for c in s.inside]
    rss = [s.rss for s in seats if s.rss]
    uss = [s.uss for s in seats if s.uss]
    peak = [s.peak_rss for s in seats if s.peak_rss]
    mib = 1 << 20
    per_seat = (max(peak) if peak else 0) + server
    seats_per_host = int((HOST_GIB - RESERVED_GIB) * (1 << 30) // per_seat) if per_seat else 0
    figures = {
        "seats": args.seats, "clicks_per_seat": args.clicks, "cells_per_seat": len(cells),
        "cpus": psutil.cpu_count(), "wall_seconds": round(wall, 1),
        "completed": len(complete),
        "failed_cells": sorted({f for s in seats for f in s.cells_failed})[:10],
        "click_problems": [p for s in seats for p in s.click_problems][:10],
        "errors": [s.error for s in seats if s.error][:10],
        "learning_path_seconds_median": round(statistics.median([s.path_seconds for s in seats]), 1),
        "kernel_rss_mib_median": round(statistics.median(rss) / mib, 1) if rss else None,
        "kernel_uss_mib_median": round(statistics.median(uss) / mib, 1) if uss else None,
        "kernel_peak_rss_mib_max": round(max(peak) / mib, 1) if peak else None,
        "lab_server_rss_mib": round(server / mib, 1),
        "click_round_trip_ms_p50": round(pct(clicks, 0.50) * 1000, 1),
        "click_round_trip_ms_p95": round(pct(clicks, 0.95) * 1000, 1),
        "click_in_kernel_ms_p50": round(pct(inside, 0.50) * 1000, 1),
        "click_in_kernel_ms_p95": round(pct(inside, 0.95) * 1000, 1),
        "seats_per_24_gib_host": seats_per_host,
    }
    for key, value in figures.items():
        print(f"{key:32} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0 if len(complete) == args.seats else 1


if __name__ == "__main__":
    sys.exit(main())
