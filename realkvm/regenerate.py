#!/usr/bin/env python3
"""Rebuild and rerun the real-kernel check, and rewrite realkvm/recording.json.

One command (see realkvm/README.md):

    python3 realkvm/regenerate.py --tree-515 DIR --tree-518 DIR --patches DIR

--tree-515  an unmodified Linux 5.15 source tree (the v1 series applies to
            5.15-rc4; the blob ids of the three files it patches are checked
            against the patches' ``index`` lines before anything is built)
--tree-518  an unmodified Linux source tree of 5.18 or later (the v5 "Emulate
            the OS Lock" series is merged there)
--patches   a folder holding the three v1 patch e-mails, as raw messages or as
            ``b4 am`` output, named so that they sort as 1, 2, 3
            (for example v1-1.eml, v1-2.eml, v1-3.eml)
--work      where build trees, images and boot logs go (default
            /work/realkvm-build/work); nothing there belongs in git

For each variant (baseline, p1, p2, p3 on 5.15; upstream on the 5.18+ tree)
this builds one arm64 kernel (tinyconfig + realkvm/kernel/config.fragment,
plus our read-only probe realkvm/kernel/realkvm_probe.c), packs the static
VMM (realkvm/vmm.c) as /init of an initramfs, boots the kernel twice under
qemu-system-aarch64 (VHE, which -cpu max gives by default, and nVHE with
kvm-arm.mode=nvhe), checks the host mode from the boot log, and parses the
VMM's "RK" lines.  The patches are applied cumulatively to one working copy
per tree, so p1, p2 and p3 are incremental rebuilds.  A variant whose
inputs are unchanged since its last build is not rebuilt.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CROSS = "aarch64-linux-gnu-"
JOBS = "2"

# Variant -> (tree key, number of v1 patches applied on top of that tree).
VARIANTS = {
    "baseline": ("515", 0),
    "p1": ("515", 1),
    "p2": ("515", 2),
    "p3": ("515", 3),
    "upstream": ("518", 0),
}
# Files of the upstream tree whose blob ids are recorded (informational).
UPSTREAM_FILES = ("arch/arm64/kvm/sys_regs.c", "arch/arm64/kvm/debug.c",
                  "arch/arm64/include/asm/kvm_host.h")
MODES = {"vhe": "", "nvhe": "kvm-arm.mode=nvhe"}
MODE_PROOF = {
    "vhe": "VHE mode initialized successfully",
    "nvhe": "Hyp mode initialized successfully",
}


def log(msg: str) -> None:
    print(f"[realkvm {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


# ---------------------------------------------------------------- patches

def patch_files(patch_dir: Path) -> list[Path]:
    found = sorted(p.resolve() for p in patch_dir.iterdir()
                   if p.is_file() and not p.name.startswith("."))
    if len(found) != 3:
        sys.exit(f"--patches {patch_dir}: expected exactly 3 patch files "
                 f"(v1 1/3, 2/3, 3/3), found {len(found)}")
    return found


def index_lines(patch: Path) -> list[tuple[str, str, str]]:
    """(path, pre-image blob, post-image blob) for each file in a patch."""
    out, path = [], None
    for line in patch.read_text(errors="replace").splitlines():
        m = re.match(r"diff --git a/(\S+) b/\S+", line)
        if m:
            path = m.group(1)
        m = re.match(r"index ([0-9a-f]+)\.\.([0-9a-f]+)", line)
        if m and path:
            out.append((path, m.group(1), m.group(2)))
            path = None
    return out


def blob_id(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def check_blobs(tree: Path, patch: Path, which: int) -> list[dict]:
    """Every file the patch touches must be the patch's pre-image
    (which=1) or post-image (which=2); returns what was checked."""
    checked = []
    for rel, pre, post in index_lines(patch):
        want = pre if which == 1 else post
        have = blob_id(tree / rel)
        if not have.startswith(want):
            sys.exit(f"{tree / rel}: blob {have[:12]} but {patch.name} "
                     f"expects {'pre' if which == 1 else 'post'}-image {want}; "
                     "give an unmodified 5.15 tree")
        checked.append({"file": rel, "blob": have[:12], "patch": patch.name,
                        "side": "pre" if which == 1 else "post"})
    return checked


def baseline_blobs(tree: Path, patches: list[Path]) -> list[dict]:
    """Each file the series touches must be the pre-image of the first
    patch that touches it."""
    checked, seen = [], set()
    for patch in patches:
        for rel, pre, _ in index_lines(patch):
            if rel in seen:
                continue
            seen.add(rel)
            have = blob_id(tree / rel)
            if not have.startswith(pre):
                sys.exit(f"{tree / rel}: blob {have[:12]} but {patch.name} "
                         f"expects {pre}; give an unmodified 5.15 tree")
            checked.append({"file": rel, "blob": have[:12],
                            "patch": patch.name, "side": "pre"})
    return checked


# ---------------------------------------------------------------- kernels

def prepare_tree(src: Path, work: Path) -> Path:
    """A private working copy of an input tree (made once)."""
    dst = work / f"src-{src.name}"
    if not dst.exists():
        log(f"copying {src} to {dst}")
        run(["cp", "-a", str(src), str(dst) + ".tmp"])
        os.rename(str(dst) + ".tmp", dst)
    return dst


def set_patch_level(tree: Path, pristine: Path, patches: list[Path],
                    level: int) -> list[dict]:
    """Put the working copy at baseline + the first `level` patches.
    Files are only rewritten when their content changes, so kbuild
    rebuilds only what the patches touch."""
    touched = sorted({rel for p in patches for rel, _, _ in index_lines(p)})
    # Compute the wanted content in a scratch copy of the touched files.
    scratch = tree.parent / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    for rel in touched:
        (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pristine / rel, scratch / rel)
    checked = []
    for patch in patches[:level]:
        checked += check_blobs(scratch, patch, 1)
        run(["patch", "-p1", "-s", "--no-backup-if-mismatch", "-i",
             str(patch)], cwd=scratch)
        checked += check_blobs(scratch, patch, 2)
    for rel in touched:
        new = (scratch / rel).read_bytes()
        if (tree / rel).read_bytes() != new:
            (tree / rel).write_bytes(new)
    shutil.rmtree(scratch, ignore_errors=True)
    return checked


def add_probe(tree: Path) -> None:
    dst = tree / "drivers/misc/realkvm_probe.c"
    src = (HERE / "kernel/realkvm_probe.c").read_bytes()
    if not dst.exists() or dst.read_bytes() != src:
        dst.write_bytes(src)
    mk = tree / "drivers/misc/Makefile"
    text = mk.read_text()
    if "realkvm_probe.o" not in text:
        mk.write_text(text + "obj-y\t\t\t\t+= realkvm_probe.o\n")


def inputs_digest(tree: Path, patches: list[Path], level: int) -> str:
    h = hashlib.sha256()
    for p in [HERE / "kernel/realkvm_probe.c", HERE / "kernel/config.fragment"]:
        h.update(p.read_bytes())
    h.update(str(tree.resolve()).encode())
    for p in patches[:level]:
        h.update(p.read_bytes())
    return h.hexdigest()


def build_kernel(tree: Path, out: Path) -> float:
    """Configure (once) and build arch/arm64/boot/Image; returns seconds."""
    env = dict(os.environ, ARCH="arm64", CROSS_COMPILE=CROSS)
    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    if not (out / ".config").exists():
        run(["make", "-s", f"O={out}", "tinyconfig"], cwd=tree, env=env)
        run([str(tree / "scripts/kconfig/merge_config.sh"), "-m", "-O",
             str(out), str(out / ".config"),
             str(HERE / "kernel/config.fragment")], cwd=tree, env=env,
            stdout=subprocess.DEVNULL)
        run(["make", "-s", f"O={out}", "olddefconfig"], cwd=tree, env=env)
        cfg = (out / ".config").read_text()
        for need in ("CONFIG_KVM=y", "CONFIG_SERIAL_AMBA_PL011_CONSOLE=y",
                     "CONFIG_DEBUG_FS=y", "CONFIG_BLK_DEV_INITRD=y"):
            if need not in cfg:
                sys.exit(f"{out}/.config lacks {need}")
    run(["make", "-s", f"O={out}", f"-j{JOBS}", "Image"], cwd=tree, env=env)
    return time.time() - t0


# ---------------------------------------------------------------- initramfs

def build_vmm(work: Path) -> Path:
    exe = work / "vmm"
    run([CROSS + "gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror",
         "-o", str(exe), str(HERE / "vmm.c")])
    return exe


def cpio_newc(entries: list[tuple[str, int, int, bytes]]) -> bytes:
    """A minimal newc archive: (name, mode, rdev(major<<8|minor), data)."""
    out = bytearray()
    ino = 1
    for name, mode, rdev, data in entries + [("TRAILER!!!", 0, 0, b"")]:
        nameb = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0,
                  rdev >> 8, rdev & 0xFF, len(nameb), 0]
        out += b"070701" + b"".join(b"%08X" % f for f in fields)
        out += nameb
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
        ino += 1
    return bytes(out)


def build_initramfs(vmm: Path, work: Path) -> Path:
    entries = [
        ("dev", 0o040755, 0, b""),
        ("dev/console", 0o020600, (5 << 8) | 1, b""),
        ("proc", 0o040755, 0, b""),
        ("sys", 0o040755, 0, b""),
        ("dbg", 0o040755, 0, b""),
        ("init", 0o100755, 0, vmm.read_bytes()),
    ]
    path = work / "initramfs.cpio"
    path.write_bytes(cpio_newc(entries))
    return path


# ---------------------------------------------------------------- boots

def boot(image: Path, initrd: Path, mode: str, logfile: Path) -> tuple[str, float]:
    append = f"console=ttyAMA0 rdinit=/init {MODES[mode]}".strip()
    cmd = ["qemu-system-aarch64", "-M", "virt,virtualization=on,gic-version=3",
           "-cpu", "max", "-smp", "1", "-m", "512", "-nodefaults", "-nic",
           "none", "-display", "none", "-monitor", "none", "-serial", "stdio",
           "-no-reboot", "-kernel", str(image), "-initrd", str(initrd),
           "-append", append]
    t0 = time.time()
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=300)
    secs = time.time() - t0
    text = res.stdout.decode(errors="replace")
    logfile.write_text(text)
    return text, secs


def parse_console(text: str) -> tuple[list[dict], dict]:
    """The VMM's lines: 'RK <scenario> <step> <value>' and 'RKMETA k v'."""
    rows, meta = [], {}
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"^RK (\S+) (\S+) (\S+)$", line)
        if m:
            rows.append({"scenario": m.group(1), "step": m.group(2),
                         "value": m.group(3)})
            continue
        m = re.match(r"^RKMETA (\S+) (.*)$", line)
        if m:
            meta[m.group(1)] = m.group(2)
    return rows, meta


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree-515", type=Path, required=True)
    ap.add_argument("--tree-518", type=Path, required=True)
    ap.add_argument("--patches", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/work/realkvm-build/work"))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--build-only", action="store_true",
                    help="build the kernels, boot nothing")
    ap.add_argument("--output", type=Path, default=HERE / "recording.json")
    args = ap.parse_args(argv)

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    patches = patch_files(args.patches)
    trees = {"515": args.tree_515.resolve(), "518": args.tree_518.resolve()}
    wanted = [v for v in args.variants.split(",") if v]
    for v in wanted:
        if v not in VARIANTS:
            sys.exit(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")

    if not args.build_only:
        vmm = build_vmm(work)
        initrd = build_initramfs(vmm, work)
    old = {}
    if args.output.exists():
        old = json.loads(args.output.read_text())
    runs = {(r["variant"], r["mode"]): r for r in old.get("runs", [])}

    for variant in wanted:
        key, level = VARIANTS[variant]
        pristine = trees[key]
        tree = prepare_tree(pristine, work)
        checked = set_patch_level(tree, pristine, patches if key == "515" else [],
                                  level if key == "515" else 0)
        if key == "515" and level == 0:
            checked = baseline_blobs(tree, patches)
        elif key == "518":
            checked = [{"file": rel, "blob": blob_id(tree / rel)[:12],
                        "side": "as given"} for rel in UPSTREAM_FILES]
        add_probe(tree)
        out = work / f"build-{key}"
        image = work / f"Image-{variant}"
        stamp = work / f"Image-{variant}.inputs"
        digest = inputs_digest(tree, patches if key == "515" else [], level)
        build_secs = None
        if image.exists() and stamp.exists() and stamp.read_text() == digest:
            log(f"{variant}: inputs unchanged, reusing {image}")
        else:
            log(f"{variant}: building in {out}")
            build_secs = build_kernel(tree, out)
            shutil.copyfile(out / "arch/arm64/boot/Image", image)
            stamp.write_text(digest)
            log(f"{variant}: built in {build_secs:.0f} s")
            (work / f"Image-{variant}.seconds").write_text(f"{build_secs:.1f}")
        if args.build_only:
            continue
        if build_secs is None and (work / f"Image-{variant}.seconds").exists():
            build_secs = float((work / f"Image-{variant}.seconds").read_text())
        for mode in MODES:
            text, secs = boot(image, initrd, mode, work / f"console-{variant}-{mode}.log")
            if MODE_PROOF[mode] not in text:
                sys.exit(f"{variant}/{mode}: boot log lacks "
                         f"{MODE_PROOF[mode]!r}; see the console log")
            rows, meta = parse_console(text)
            if meta.get("done") != "ok":
                sys.exit(f"{variant}/{mode}: the VMM did not finish; see "
                         f"{work}/console-{variant}-{mode}.log")
            version = next((ln.strip() for ln in text.splitlines()
                            if "Linux version" in ln), "")
            version = re.sub(r"^\[[ 0-9.]+\] ", "", version)
            prev = runs.get((variant, mode), {})
            runs[(variant, mode)] = {
                "variant": variant, "mode": mode,
                "kernel_release": meta.get("release", ""),
                "kernel_version": version,
                "mode_proof": MODE_PROOF[mode],
                "blobs_checked": checked,
                "build_seconds": round(build_secs, 1) if build_secs
                else prev.get("build_seconds"),
                "boot_seconds": round(secs, 2),
                "vmm_seconds": float(meta.get("seconds", "nan")),
                "scenario_seconds": {k[5:]: float(v) for k, v in meta.items()
                                     if k.startswith("time.")},
                "rows": rows,
            }
            log(f"{variant}/{mode}: {len(rows)} values in {secs:.1f} s")

    if args.build_only:
        return 0
    order = {v: i for i, v in enumerate(VARIANTS)}
    result = {
        "about": "Values observed by realkvm/vmm.c on real KVM/arm64 kernels "
                 "nested under qemu-system-aarch64; regenerate with "
                 "realkvm/regenerate.py (see realkvm/README.md).",
        "qemu": subprocess.run(["qemu-system-aarch64", "--version"],
                               stdout=subprocess.PIPE, text=True
                               ).stdout.splitlines()[0],
        "qemu_machine": "-M virt,virtualization=on,gic-version=3 -cpu max -smp 1",
        "runs": sorted(runs.values(),
                       key=lambda r: (order[r["variant"]], r["mode"] != "nvhe")),
    }
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
