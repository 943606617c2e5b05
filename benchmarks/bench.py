"""kvmdbg benchmarks: repeated timed runs, medians, side by side with a peer emulator in one run.

Run: ``python benchmarks/bench.py`` (``--quick`` for fewer repeats and a smaller trace).
Needs the ``bench`` extra (``pip install -e .[bench]``): Unicorn is the peer every speed
target is a ratio to, so the benchmark refuses to run without it rather than print
absolute figures that cannot be compared across machines.

Figures from a 2-core machine are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

MRS_OSLSR_EL1 = 0xD5301180  # mrs x0, oslsr_el1 (Op0=2 Op1=0 CRn=1 CRm=1 Op2=4)


def median_us(fn: Callable[[], object], *, number: int, repeat: int) -> float:
    """Median over ``repeat`` runs of the mean CPU time of ``number`` calls, in microseconds.

    CPU time of this process (``time.process_time``), not wall time: on a shared machine a
    benchmark waits for a core now and then, and that wait is no part of what either kvmdbg
    or the peer costs. Both are measured the same way, so the ratios compare like with like.
    """
    samples = []
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(number):
            fn()
        samples.append((time.process_time() - t0) / number * 1e6)
    return statistics.median(samples)


def paired_us(fn: Callable[[], object], peer: Callable[[], object], *, number: int, repeat: int,
              ) -> tuple[float, float]:
    """Median CPU time of ``fn`` (µs) and the median of its ratio to ``peer``, timed back to back.

    Each repeat times ``number`` calls of the peer and then of ``fn``, so a change of load on a
    shared machine moves both sides of each ratio together.
    """
    ours, ratios = [], []
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(number):
            peer()
        t1 = time.process_time()
        for _ in range(number):
            fn()
        t2 = time.process_time()
        ours.append((t2 - t1) / number * 1e6)
        ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(ours), statistics.median(ratios)


# -- the peer -----------------------------------------------------------------------------------


def _require_unicorn() -> Any:
    try:
        import unicorn
    except ImportError:
        sys.exit("benchmarks/bench.py needs Unicorn, the peer every target is a ratio to: "
                 "pip install -e .[bench]")
    return unicorn


def unicorn_mrs() -> Callable[[], object]:
    """The peer, ready to run: Unicorn executing ``mrs x0, oslsr_el1`` with an empty Python instruction hook."""
    uc_mod = _require_unicorn()
    uc = uc_mod.Uc(uc_mod.UC_ARCH_ARM64, uc_mod.UC_MODE_ARM)
    base = 0x10000
    uc.mem_map(base, 0x1000)
    uc.mem_write(base, MRS_OSLSR_EL1.to_bytes(4, "little"))
    uc.hook_add(uc_mod.UC_HOOK_CODE, lambda *a: None)
    return lambda: uc.emu_start(base, base + 4)


def bench_unicorn_mrs(number: int, repeat: int) -> float:
    return median_us(unicorn_mrs(), number=number, repeat=repeat)


def bench_unicorn_trapped_mrs(number: int, repeat: int) -> float | None:
    """The same MRS handed to a Python handler (UC_HOOK_INSN on MRS), as a trap to a hypervisor is."""
    uc_mod = _require_unicorn()
    try:
        from unicorn.arm64_const import UC_ARM64_INS_MRS, UC_ARM64_REG_X0
    except ImportError:  # pragma: no cover - older Unicorn
        return None
    uc = uc_mod.Uc(uc_mod.UC_ARCH_ARM64, uc_mod.UC_MODE_ARM)
    base = 0x10000
    uc.mem_map(base, 0x1000)
    uc.mem_write(base, MRS_OSLSR_EL1.to_bytes(4, "little"))

    def on_mrs(uc_: Any, reg: int, cp_reg: Any, user_data: Any) -> bool:
        uc_.reg_write(UC_ARM64_REG_X0, 0x8)
        return True  # handled: skip the instruction

    try:
        uc.hook_add(uc_mod.UC_HOOK_INSN, on_mrs, None, 1, 0, UC_ARM64_INS_MRS)
    except Exception:  # noqa: BLE001 - a Unicorn build without the hook
        return None
    return median_us(lambda: uc.emu_start(base, base + 4), number=number, repeat=repeat)


# -- kvmdbg -------------------------------------------------------------------------------------


def trapped_access(*, trace: bool, write: bool, vcpus: int = 1) -> Callable[[], object]:
    """One trapped guest access through the full KVM path (exit, handler, re-entry), on upstream.

    Traced runs keep a ring of 1000 events, so memory stays flat however long the benchmark runs.
    """
    from kvmdbg import Machine

    m = Machine("upstream", trace=1000 if trace else False, vcpus=vcpus)
    m.enter_guest()
    if write:
        return lambda: m.guest_write("OSLAR_EL1", 0)
    return lambda: m.guest_read("OSLSR_EL1")


def world_switch(*, trace: bool) -> Callable[[], object]:
    """nVHE vcpu_load, enter, exit, vcpu_put (p2: the variant that switches the most state)."""
    from kvmdbg import Machine

    m = Machine("p2", trace=1000 if trace else False)

    def cycle() -> None:
        m.vcpu_load()
        m.enter_guest()
        m.exit_guest()
        m.vcpu_put()

    return cycle


def straight_line_source(n: int) -> str:
    """``n`` instructions of ALU work, no branches: every word executes exactly once."""
    body = ["add x1, x1, #1", "orr x2, x2, x1", "sub x3, x3, #3", "movk x4, #0x1234, lsl #16",
            "add x5, x1, x2, lsl #2"]
    return "\n".join(body[i % len(body)] for i in range(n))


def bench_straight_line(n: int, repeat: int) -> tuple[float, float]:
    """Instructions per second of straight-line code: its first run on a machine, and the median of later runs."""
    from kvmdbg import Machine, assemble

    prog = assemble(straight_line_source(n))
    m = Machine("upstream", trace=False)
    t0 = time.process_time()
    res = m.run(prog, max_steps=n + 1)
    first = time.process_time() - t0
    assert res.steps == n and res.stop_reason == "end", res.stop_reason
    samples = []
    for _ in range(repeat):
        t0 = time.process_time()
        m.run(prog, max_steps=n + 1)
        samples.append(time.process_time() - t0)
    return n / first, n / statistics.median(samples)


def bench_loop(repeat: int) -> float:
    """A tight loop (three instructions, 100,000 iterations): decoding plays no part here."""
    from kvmdbg import Machine, assemble

    prog = assemble("movz x1, #0x1, lsl #16\nloop:\nadd x0, x0, #2\nsub x1, x1, #1\ncbnz x1, loop")
    m = Machine("upstream", trace=False)
    samples = []
    for _ in range(repeat):
        t0 = time.process_time()
        res = m.run(prog, max_steps=10**6)
        samples.append(res.steps / (time.process_time() - t0))
    return statistics.median(samples)


def bench_compare(repeat: int) -> float:
    from kvmdbg.teach.compare import compare

    def both() -> None:
        compare("oslock-toggle", vhe=False)
        compare("oslock-toggle", vhe=True)

    return median_us(both, number=1, repeat=repeat) / 1000


def bench_lab_clicks(repeat: int) -> dict[str, float]:
    """Median ms from a click to the redrawn panel, table, machine diagram and chart, per control.

    Each click also lists every phase it ran and redraws the SVG machine diagram. "run to
    kvm_arch_vcpu_put" is the slowest kind of click: stepping never reaches it, so the lab steps
    one whole exit and entry, sees the state repeat and says so.
    """
    from kvmdbg.teach.widgets import lab

    w = lab("p2", vhe=True)
    for _ in range(45):  # a realistic history: the chart shows its last steps
        w.step_button.click()

    def run_to_put() -> None:
        w.run_target.value = "kvm_arch_vcpu_put"
        w.run_button.click()
        w.run_target.value = "next entry/exit"

    actions: dict[str, Callable[[], object]] = {
        "OSLK toggle": lambda: setattr(w.oslk, "value", not w.oslk.value),
        "step": w.step_button.click,
        "read OSLSR_EL1": w.read_button.click,
        "run to next entry/exit": w.run_button.click,
        "vcpu_put/load": w.put_button.click,
        "run to kvm_arch_vcpu_put (never reached)": run_to_put,
    }
    return {name: median_us(fn, number=1, repeat=max(repeat, 9)) / 1000 for name, fn in actions.items()}


# -- memory, each in a subprocess of its own, so one peak does not hide another -------------------

_DATAFRAME_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
events = int(sys.argv[2])
from kvmdbg import Machine
import pandas  # imported before the baseline, as a notebook has it
m = Machine("p2", trace=True)
m.enter_guest()
t0 = time.perf_counter()
while len(m.trace) < events:
    m.exit_guest()
    m.enter_guest()
record_s = time.perf_counter() - t0
kib = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
before = kib()
t0 = time.perf_counter()
df = m.trace.to_dataframe()
frame_s = time.perf_counter() - t0
print(json.dumps({"events": len(m.trace), "rows": len(df), "record_s": record_s, "frame_s": frame_s,
                  "rss_before_kib": before, "rss_peak_kib": kib(),
                  "frame_bytes": int(df.memory_usage(deep=True).sum())}))
"""


def bench_dataframe_memory(events: int) -> dict[str, float]:
    """Peak RSS of a process that records ``events`` events and builds ``to_dataframe()`` of them."""
    out = subprocess.run([sys.executable, "-c", _DATAFRAME_CHILD, ROOT, str(events)],
                         capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def bench_trace_memory(events: int) -> tuple[float, float]:
    """Bytes per recorded event (tracemalloc): a full trace, and the bounded ring buffer (trace=1000)."""
    import tracemalloc

    from kvmdbg import Machine

    out = []
    for trace in (True, 1000):
        m = Machine("p2", trace=trace)
        m.enter_guest()
        tracemalloc.start()
        start = tracemalloc.get_traced_memory()[0]
        while m.trace.dropped + len(m.trace) < events:
            m.exit_guest()
            m.enter_guest()
        used = tracemalloc.get_traced_memory()[0] - start
        tracemalloc.stop()
        out.append(used / events)
    return out[0], out[1]


def bench_import() -> float:
    out = subprocess.run(
        [sys.executable, "-c",
         f"import sys; sys.path.insert(0, {ROOT!r}); import time; t=time.perf_counter(); import kvmdbg; "
         "assert 'matplotlib' not in sys.modules and 'ipywidgets' not in sys.modules; "
         "print(time.perf_counter()-t)"],
        capture_output=True, text=True, check=True,
    )
    return float(out.stdout.strip()) * 1000


# -- the report -----------------------------------------------------------------------------------


def _row(name: str, shown: str, target: str = "", met: bool | str | None = None) -> str:
    verdict = met if isinstance(met, str) else "" if met is None else ("yes" if met else "NO")
    return f"{name:<64} {shown:>18}  {target:<14} {verdict}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, a 100,000-event trace")
    ap.add_argument("--events", type=int, default=None,
                    help="events in the to_dataframe() memory trace (default 1,000,000; 100,000 with --quick)")
    ap.add_argument("--skip-memory", action="store_true", help="leave out the to_dataframe() memory measurement")
    args = ap.parse_args(argv)
    _require_unicorn()
    n, r = (300, 5) if args.quick else (2000, 9)
    events = args.events or (100_000 if args.quick else 1_000_000)

    peer_fn = unicorn_mrs()
    peer = bench_unicorn_mrs(n, r)
    peer_trapped = bench_unicorn_trapped_mrs(n, r)
    rows = [
        ("trapped MRS OSLSR_EL1 round trip, untraced", trapped_access(trace=False, write=False), 0.5),
        ("trapped MSR OSLAR_EL1 round trip, untraced", trapped_access(trace=False, write=True), 0.5),
        ("trapped MRS OSLSR_EL1 round trip, traced", trapped_access(trace=True, write=False), 1.5),
        ("trapped MSR OSLAR_EL1 round trip, traced", trapped_access(trace=True, write=True), 1.5),
        ("nVHE load/enter/exit/put, untraced", world_switch(trace=False), 1.0),
        ("nVHE load/enter/exit/put, traced", world_switch(trace=True), None),
    ]
    measured = [(name, *paired_us(fn, peer_fn, number=n, repeat=r), limit) for name, fn, limit in rows]
    one, eight = trapped_access(trace=True, write=False), trapped_access(trace=True, write=False, vcpus=8)
    mrs_on8, ratio8 = paired_us(eight, one, number=n, repeat=r)
    peer_again = bench_unicorn_mrs(n, r)  # the machine is shared: see whether the peer drifted
    first_ips, second_ips = bench_straight_line(10_000, r)
    loop_ips = bench_loop(3)
    compare_ms = bench_compare(r)
    import_ms = bench_import()
    clicks = bench_lab_clicks(r)

    print(f"peer (Unicorn {_require_unicorn().__version__}), median CPU time of {r} x {n} calls")
    print(_row("peer: Unicorn mrs x0, oslsr_el1, empty Python hook", f"{peer:.2f} us"))
    print(_row("peer: the same, measured again after kvmdbg's timings", f"{peer_again:.2f} us"))
    if peer_trapped is not None:
        print(_row("peer: Unicorn mrs trapped to a Python handler", f"{peer_trapped:.2f} us"))
    print()
    print(_row("what (ratio: to the peer, timed back to back)", "median", "target", "met?"))
    for name, value, ratio, limit in measured:
        print(_row(name, f"{value:.1f} us = {ratio:.2f}x", "" if limit is None else f"<= {limit}x",
                   None if limit is None else ratio <= limit))
    print(_row("traced MRS, 8 vCPUs / 1 vCPU (back to back)", f"{mrs_on8:.1f} us = {ratio8:.2f}x",
               "1.0x (+-10%)", ratio8 <= 1.1))
    print(_row("straight-line code, 10,000 instructions, first run", f"{first_ips:,.0f}/s"))
    print(_row("straight-line code, 10,000 instructions, second run", f"{second_ips:,.0f}/s", ">= 1,000,000/s",
               second_ips >= 1e6))
    print(_row("tight loop (add, sub, cbnz), 196,610 instructions", f"{loop_ips:,.0f}/s"))
    print(_row("compare('oslock-toggle'), every variant x 2 host modes", f"{compare_ms:.1f} ms", "< 200 ms",
               compare_ms < 200))
    print(_row("import kvmdbg (no plotting or widgets)", f"{import_ms:.0f} ms", "< 300 ms", import_ms < 300))
    for action, ms in clicks.items():
        print(_row(f"lab click: {action}", f"{ms:.1f} ms", "< 100 ms", ms < 100))
    if not args.skip_memory:
        mem = bench_dataframe_memory(events)
        peak_gib = mem["rss_peak_kib"] / 2**20
        scale = 1_000_000 / mem["events"]
        print(_row(f"to_dataframe() of {mem['events']:,.0f} events: peak RSS of the process",
                   f"{peak_gib:.2f} GiB", "< 2 GB" if scale == 1 else "", peak_gib * 2**30 < 2e9 if scale == 1
                   else None))
        print(_row("  of which building the DataFrame (peak minus before)",
                   f"{(mem['rss_peak_kib'] - mem['rss_before_kib']) / 1024:.0f} MiB"))
        print(_row("  the DataFrame itself (memory_usage(deep=True))", f"{mem['frame_bytes'] / 2**20:.0f} MiB"))
        print(_row("  recording those events / building the frame",
                   f"{mem['record_s']:.1f} s / {mem['frame_s']:.1f} s"))
        full, ring = bench_trace_memory(min(events, 100_000))
        print(_row("trace memory per event, full trace (tracemalloc)", f"{full:.0f} bytes"))
        print(_row("trace memory per event, trace=1000 (ring buffer)", f"{ring:.2f} bytes"))


if __name__ == "__main__":
    main()
