"""kvmdbg benchmarks: repeated timed runs, medians, one run side by side.

Run: ``python benchmarks/bench.py`` (add ``--quick`` for fewer repeats).
Figures from a 2-core machine are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def median_us(fn: Callable[[], object], *, number: int, repeat: int) -> float:
    """Median over ``repeat`` runs of the mean time of ``number`` calls, in microseconds."""
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number * 1e6)
    return statistics.median(samples)


def bench_trapped_access(trace: bool, number: int, repeat: int) -> float:
    from kvmdbg import Machine

    m = Machine("upstream", trace=trace if not trace else 1000)
    m.enter_guest()
    return median_us(lambda: m.guest_read("OSLSR_EL1"), number=number, repeat=repeat)


def bench_world_switch(number: int, repeat: int) -> float:
    from kvmdbg import Machine

    m = Machine("p2", trace=False)
    m.enter_guest()

    def round_trip() -> None:
        m.exit_guest()
        m.enter_guest()

    return median_us(round_trip, number=number, repeat=repeat)


def bench_unicorn_mrs(number: int, repeat: int) -> float | None:
    """The peer: Unicorn executing ``mrs x0, oslsr_el1`` with an empty Python instruction hook."""
    try:
        from unicorn import UC_ARCH_ARM64, UC_HOOK_CODE, UC_MODE_ARM, Uc
    except ImportError:
        return None
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    base = 0x10000
    uc.mem_map(base, 0x1000)
    uc.mem_write(base, (0xD5301180).to_bytes(4, "little"))  # mrs x0, oslsr_el1
    uc.hook_add(UC_HOOK_CODE, lambda *a: None)

    def one() -> None:
        uc.emu_start(base, base + 4)

    return median_us(one, number=number, repeat=repeat)


def bench_compare(repeat: int) -> float | None:
    try:
        from kvmdbg.teach.compare import compare
    except ImportError:
        return None

    def both() -> None:
        compare("oslock-toggle", vhe=False)
        compare("oslock-toggle", vhe=True)

    return median_us(both, number=1, repeat=repeat) / 1000


def bench_program(repeat: int) -> float | None:
    try:
        from kvmdbg import Machine, assemble
    except ImportError:
        return None
    src = "mov x1, #0\nloop:\nadd x1, x1, #1\nb loop\n"
    try:
        prog = assemble(src)
    except Exception:  # noqa: BLE001 - the assembler may not support this yet
        return None
    from kvmdbg.errors import RunawayGuestError

    def run() -> None:
        m = Machine("upstream", trace=False)
        try:
            m.run(prog, max_steps=100_000)
        except RunawayGuestError:
            pass

    t = median_us(run, number=1, repeat=repeat) / 1e6
    return 100_000 / t


def bench_lab_clicks(repeat: int) -> dict[str, float] | None:
    """Median ms from a click to the redrawn panel, table, machine diagram and chart, per control.

    Each click also lists every phase it ran and redraws the SVG machine diagram. "run to
    kvm_arch_vcpu_put" is the slowest kind of click: stepping never reaches it, so the lab steps
    one whole exit and entry, sees the state repeat and says so.
    """
    try:
        from kvmdbg.teach.widgets import lab
    except ImportError:
        return None
    w = lab("p2", vhe=True)
    for _ in range(45):  # a realistic history: the chart shows its last steps
        w.step_button.click()
    actions = {
        "OSLK toggle": lambda: setattr(w.oslk, "value", not w.oslk.value),
        "step": w.step_button.click,
        "read OSLSR_EL1": w.read_button.click,
        "run to next entry/exit": w.run_button.click,
        "vcpu_put/load": w.put_button.click,
        "run to kvm_arch_vcpu_put (never reached)": lambda: (setattr(w.run_target, "value", "kvm_arch_vcpu_put"),
                                                             w.run_button.click(),
                                                             setattr(w.run_target, "value", "next entry/exit")),
    }
    return {name: median_us(fn, number=1, repeat=max(repeat, 9)) / 1000 for name, fn in actions.items()}


def bench_trace_memory(events: int) -> tuple[float, float]:
    """Bytes per recorded event: a full trace, and the bounded ring buffer (trace=1000)."""
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
         f"import sys; sys.path.insert(0, {sys.path[0]!r}); " "import time; t=time.perf_counter(); import kvmdbg; "
         "import sys; assert 'matplotlib' not in sys.modules and 'ipywidgets' not in sys.modules; "
         "print(time.perf_counter()-t)"],
        capture_output=True, text=True, check=True,
    )
    return float(out.stdout.strip()) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n, r = (200, 3) if args.quick else (2000, 7)
    rows = [
        ("trapped MRS OSLSR_EL1, full KVM path, tracing on", bench_trapped_access(True, n, r), "us", "< 10"),
        ("trapped MRS OSLSR_EL1, full KVM path, tracing off", bench_trapped_access(False, n, r), "us", "< 3"),
        ("peer: Unicorn mrs x0, oslsr_el1 + empty Python hook", bench_unicorn_mrs(n, r), "us", "-"),
        ("nVHE world switch (exit + enter), tracing off", bench_world_switch(n, r), "us", "< 20"),
        ("compare('oslock-toggle'), 5 variants x 2 host modes", bench_compare(r), "ms", "< 200"),
        ("guest program, 100,000 instructions, tracing off", bench_program(3), "insn/s", ">= 250,000"),
        ("import kvmdbg (no plotting or widgets)", bench_import(), "ms", "< 300"),
    ]
    width = max(len(name) for name, *_ in rows)
    for name, value, unit, target in rows:
        shown = "n/a" if value is None else (f"{value:,.0f}" if unit == "insn/s" else f"{value:.2f}")
        print(f"{name:<{width}}  {shown:>10} {unit:<7} target {target}")
    full, ring = bench_trace_memory(100_000 if args.quick else 1_000_000)
    print(f"{'trace memory per event, full trace':<{width}}  {full:>10.0f} bytes")
    print(f"{'trace memory per event, trace=1000 (ring buffer)':<{width}}  {ring:>10.2f} bytes")
    clicks = bench_lab_clicks(r) or {}
    for action, ms in clicks.items():
        print(f"{'OS Lock lab, click to redraw: ' + action:<{width}}  {ms:>10.2f} ms      target < 100")
    peer, ours = rows[2][1], rows[1][1]
    if peer:
        print(f"ratio, untraced trapped access / Unicorn peer: {ours / peer:.2f}x")


if __name__ == "__main__":
    main()
