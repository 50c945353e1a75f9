"""URL-digest benchmark: expunge's first run, canonical recipe, incremental re-match, the daily list
update, DuckDB and floors, with the planted hits in every shard and in one shard.

Run by hand (it is not a test)::

    python benchmarks/bench_urls.py [--rows 5000000 --shards 10 --bank 1000000 --planted 2000
                                     --workers 2 --repeat 3 --quiet-wait 20 --small-rows 1000000
                                     --layouts every,one --curve CURVE.json
                                     --workdir DIR --keep --results FILE]

On the 2-core machine of RESULTS.md a run with both layouts and ``--repeat 1`` takes about 6 minutes,
plus up to 20 s per step of waiting when other processes keep the machine busy.

Layouts: ``every`` (2,000 planted hits spread over every shard, so every shard is rewritten) runs
steps a b c d e f and the update; ``one`` (all planted hits in the first shard; the other shards lose
their quarantine cases, so they are untouched and hard-linked) runs a, d, e and the update on its own
copy of the data and bank. The update (``update_release``) appends 100,000 non-matching hashes to the
first run's list file and runs ``python -m expunge.cli clean`` with the first run's arguments as a
process, then checks that no shard was rewritten and that the release equals a from-scratch run.
``--curve`` takes bench_curve.py's JSON, whose 20M-row update/first-run ratio is one of the targets.

Why it is built this way:

* One generated dataset (``expunge.demo.synth``, non-UTF-8 rows left out so DuckDB can read the very same
  files) and one bank serve every measurement, so the ratios compare like with like.
* Every measured step runs in a fresh subprocess of this script (``--step NAME``). Nothing a step
  imports, caches or allocates leaks into the next one, and each step's peak memory is its own:
  ``VmHWM`` of the step process and of every process it starts, sampled while the step runs (see
  ``_memory_report`` for why not ``ru_maxrss``).
* Steps run in ``--repeat`` rounds (a b c d e f update a.one ..., a b c ...) and the best time of each counts:
  on a small shared machine other work only ever adds time, so the minimum is the best estimate of
  the cost itself. Each step also records how much CPU other processes used while it ran, so a noisy
  figure can be recognised as such.
* Files are read from the page cache in every step (they were just written and RAM is plentiful), so
  no step is favoured by running later.
* Correctness is checked, not assumed: (a) and (b) must remove exactly the planted rows, (c) must find
  them again without re-reading the dataset (an inotify watch on the dataset folder sees opens and
  reads by any process, pool workers included), and (d) must drop exactly the planted rows.

The figures are printed as a table with their targets; ``--results FILE`` also keeps them as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

URL_COLUMN = "URL"  # what expunge.synth writes
DIGEST_WIDTH = 16  # MD5
LAYOUTS = ("every", "one")
# Steps of each layout, repeated --repeat times in this order (a_small closes every round).
LAYOUT_STEPS = {
    "every": ("a", "b", "c", "d", "e", "f", "update"),
    "one": ("a.one", "d.one", "e.one", "update.one"),
}
ROUND_STEPS = (*LAYOUT_STEPS["every"], *LAYOUT_STEPS["one"], "a_small")
ONCE_STEPS = ("canon", "cli_start")  # repeat internally
STEP_TITLES = {
    "a": "(a) first clean, raw-recipe url_md5 bank",
    "b": "(b) first clean, canonical-recipe url_md5 bank",
    "c": "(c) re-match after +100k hashes",
    "canon": "canonicalize_array, one shard, one process",
    "cli_start": "CLI start, --help / clean --help (best of 5)",
    "d": "(d) DuckDB, one COPY statement",
    "e": "(e) floor: read URL column + hashlib md5",
    "f": "(f) reference: pyarrow rewrite of every shard",
    "update": "update: the same clean command after +100k non-matching hashes",
    "a.one": "(a) first clean, hits in one shard",
    "d.one": "(d) DuckDB, hits in one shard",
    "e.one": "(e) floor, one-shard layout's data",
    "update.one": "update, hits in one shard",
    "a_small": "(a) at the small row count",
}
# Which dataset, list file and first-run folders each layout uses (see ``prepare``).
LAYOUT_DATA = {
    "every": {"dataset": "main", "list": "raw", "first": "a"},
    "one": {"dataset": "one", "list": "one_raw", "first": "a_one"},
}
CLI_REPEATS = 5
GROWTH = 100_000  # hashes added to the bank before (c)
CANON_REPEATS = 3
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A step failed or produced something the benchmark cannot use."""


# --------------------------------------------------------------------------------------------------
# Monitoring: peak RSS of the step process and its descendants, and CPU used by everyone else.


def _proc_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, own CPU ticks, reaped children's CPU ticks), read from /proc (no psutil)."""
    table: dict[int, tuple[int, int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                data = fh.read()
        except OSError:
            continue  # exited while we looked
        # "pid (comm) state ppid ...": comm may hold spaces or parentheses, so split after the last ')'.
        f = data[data.rindex(b")") + 2 :].split()
        table[int(entry.name)] = (int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14]))
    return table


def _vm_hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _machine_busy_ticks() -> int:
    """CPU ticks spent by anything on this machine (user, nice, system, irq, softirq) since boot."""
    with open("/proc/stat", encoding="ascii") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    return fields[0] + fields[1] + fields[2] + fields[5] + fields[6]


class StepMonitor:
    """Polls ``VmHWM`` (the kernel's own peak-RSS mark) and CPU time of every descendant.

    ``VmHWM`` only grows, so the last sample before a worker exits misses at most what the worker
    added in its final interval; a scan of /proc costs about a millisecond, so 0.1 s keeps the
    monitor's own load near 1 % of a core. The depth below this process tells the forkserver
    (depth 1) from the pool workers it forks (depth 2). CPU of other processes is the machine's busy
    time minus this process tree's, an estimate of how much the measurement was disturbed.

    Descendants that already run when the monitor starts (a forkserver left by an earlier pool in the
    same process) are not the step's: their CPU and memory are left out.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peaks: dict[int, tuple[int, int]] = {}  # pid -> (depth below this process, peak KiB)
        self.cpu: dict[int, tuple[int, int, int]] = {}  # pid -> (depth, own ticks, reaped children)
        self.alive_at_end: set[int] = set()
        self._before: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="step-monitor", daemon=True)
        self._wall = self._busy = 0.0
        self._self_cpu = 0.0
        self.result: dict[str, float] = {}

    def __enter__(self) -> StepMonitor:
        self._before = self.sample()
        self.peaks.clear()
        self.cpu.clear()
        self._wall, self._busy = time.perf_counter(), _machine_busy_ticks() / CLK_TCK
        times = os.times()
        self._self_cpu = times.user + times.system
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.alive_at_end = self.sample()
        wall = time.perf_counter() - self._wall
        busy = _machine_busy_ticks() / CLK_TCK - self._busy
        times = os.times()
        own = times.user + times.system - self._self_cpu
        by_parent = own
        for pid, (depth, ticks, reaped) in self.cpu.items():
            if depth == 1:
                by_parent += (ticks + reaped) / CLK_TCK  # the forkserver's reaped workers are in ``reaped``
            elif pid in self.alive_at_end:
                by_parent += ticks / CLK_TCK  # still running, so not yet in its parent's ``reaped``
        # A grandchild whose parent exits unwaited (a command's forkserver) is in nobody's ``reaped``;
        # its own ticks at the last sample still count. Both sums miss a little, so take the larger.
        by_process = own + sum(ticks for _, ticks, _ in self.cpu.values()) / CLK_TCK
        own = max(by_parent, by_process)
        other = max(0.0, busy - own)
        self.result = {"wall": wall, "own_cpu_s": own, "other_cpu_s": other, "other_cores": other / wall}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> set[int]:
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        seen: set[int] = set()
        frontier, depth = [os.getpid()], 0
        while frontier:
            depth += 1
            frontier = [c for p in frontier for c in children.get(p, [])]
            for pid in frontier:
                seen.add(pid)
                if pid in self._before:
                    continue
                self.cpu[pid] = (depth, table[pid][1], table[pid][2])
                hwm = _vm_hwm_kib(pid)
                if hwm is not None:
                    self.peaks[pid] = (depth, max(hwm, self.peaks.get(pid, (depth, 0))[1]))
        return seen


def _memory_report(monitor: StepMonitor) -> dict[str, Any]:
    """Peak RSS (``VmHWM``) of this step process and of the processes it started.

    ``ru_maxrss`` is not used: Linux carries the parent's high-water mark over ``fork`` + ``exec``
    into the child's ``ru_maxrss`` (a step started by a parent that peaked at 670 MiB reports 670 MiB
    however little it uses itself), while ``VmHWM`` belongs to the process's own address space.
    """
    own = _vm_hwm_kib(os.getpid()) or 0
    workers = [kib for depth, kib in monitor.peaks.values() if depth >= 2]
    helpers = [kib for depth, kib in monitor.peaks.values() if depth == 1]
    return {
        "main_mib": own / 1024,
        "workers_max_mib": max(workers, default=0) / 1024,  # pool workers (children of the forkserver)
        "workers_seen": len(workers),
        "helpers_max_mib": max(helpers, default=0) / 1024,  # forkserver, resource tracker
    }


# --------------------------------------------------------------------------------------------------
# inotify: proof that a step re-read no dataset file, whichever process would have done it.

_IN_ACCESS = 0x00000001
_IN_OPEN = 0x00000020
_IN_Q_OVERFLOW = 0x00004000
_EVENT_HEADER = struct.Struct("iIII")


class DirWatch:
    """Counts open/read events on the files of one folder (Linux inotify through libc).

    ``stat`` raises no event, so expunge's change detection is allowed; opening or reading a shard is
    seen. Any process counts, so pool workers are covered too, which an audit hook could not do.
    """

    def __init__(self, folder: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = int(self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(folder), _IN_OPEN | _IN_ACCESS)
        if wd < 0:
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), "inotify_add_watch failed")

    def drain(self) -> dict[str, Any]:
        """Event counts for files in the folder, for the folder itself (listing it, which shard
        discovery must do) and the names of the files touched. The kernel merges consecutive identical
        events, so ``access`` counts bursts of reads, not bytes or calls."""
        counts: dict[str, Any] = {"open": 0, "access": 0, "folder": 0, "overflow": 0}
        files: set[str] = set()
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            pos = 0
            while pos < len(data):
                _, mask, _, name_len = _EVENT_HEADER.unpack_from(data, pos)
                name = data[pos + _EVENT_HEADER.size : pos + _EVENT_HEADER.size + name_len].rstrip(b"\0")
                pos += _EVENT_HEADER.size + name_len
                counts["overflow"] += bool(mask & _IN_Q_OVERFLOW)
                if not name:
                    counts["folder"] += bool(mask & (_IN_OPEN | _IN_ACCESS))
                    continue
                counts["open"] += bool(mask & _IN_OPEN)
                counts["access"] += bool(mask & _IN_ACCESS)
                files.add(os.fsdecode(name))
        counts["files"] = sorted(files)
        return counts

    def close(self) -> None:
        os.close(self.fd)


# --------------------------------------------------------------------------------------------------
# The command a user runs: `expunge clean` as a process, and the daily update of its list.

QUARANTINE_FREE = r"^https?://[^/]+\.[^/]+/"  # rows matching this are never quarantined (raw recipe)


def clean_command(dataset: Path, list_path: Path, store: Path, out: Path, workers: int) -> list[str]:
    """``expunge clean DATASET --list FILE:url_md5 --store STORE --out OUT --workers N``, through the
    interpreter running this script (a pyenv shim in front of a console script costs its own start-up)."""
    return [
        *[sys.executable, "-m", "expunge.cli", "clean", str(dataset)],
        *["--list", f"{list_path}:url_md5", "--store", str(store), "--out", str(out)],
        *["--workers", str(workers)],
    ]


def _tree_memory(monitor: StepMonitor) -> dict[str, Any]:
    """Peak RSS of a command run as a child: the command's own process (depth 1) and the largest
    process it started (forkserver, resource tracker, pool workers), each its own ``VmHWM``."""
    main = [kib for depth, kib in monitor.peaks.values() if depth == 1]
    children = [kib for depth, kib in monitor.peaks.values() if depth >= 2]
    return {
        "main_mib": max(main, default=0) / 1024,
        "workers_max_mib": max(children, default=0) / 1024,
        "workers_seen": len(children),
        "helpers_max_mib": 0.0,
        "peak_mib": max(main + children, default=0) / 1024,
    }


def run_process(cmd: list[str], timeout: float) -> dict[str, Any]:
    """Run one command as a process, timed end to end (interpreter start to exit), with its memory.

    CPU of the command's tree is what the kernel charged to reaped children (``os.times``), which
    covers the pool workers once their parents waited for them; the monitor's estimate is the floor.
    """
    before = os.times()
    with StepMonitor() as monitor:
        started = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{' '.join(cmd[:5])} ... took longer than {timeout:.0f} s") from exc
        seconds = time.perf_counter() - started
    after = os.times()
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    cpu = dict(monitor.result)
    reaped = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    if reaped > cpu["own_cpu_s"]:
        cpu["other_cpu_s"] = max(0.0, cpu["other_cpu_s"] - (reaped - cpu["own_cpu_s"]))
        cpu["own_cpu_s"] = reaped
        cpu["other_cores"] = cpu["other_cpu_s"] / cpu["wall"]
    return {"seconds": seconds, "memory": _tree_memory(monitor), "cpu": cpu}


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file below ``folder``: inode, mtime (ns) and size. A rewrite (temp file renamed into
    place) changes the inode; a file left alone keeps all three."""
    found: dict[str, tuple[int, int, int]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            st = path.stat()
            found[path.relative_to(folder).as_posix()] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return found


def _manifest_files(out: Path) -> dict[str, Any]:
    manifest = json.loads((out / "MANIFEST.json").read_text())
    return {f["path"]: f for f in manifest.get("files", [])}


def compare_releases(mine: Path, reference: Path, shard_names: list[str]) -> dict[str, Any]:
    """Shard-for-shard byte comparison of two releases; other files are listed when they differ
    (the manifest, summary and report name the run and its bank versions, so they may)."""
    import filecmp

    differing = [n for n in shard_names if not filecmp.cmp(mine / n, reference / n, shallow=False)]
    others = sorted(
        p.name
        for p in mine.iterdir()
        if p.is_file()
        and p.name not in shard_names
        and (not (reference / p.name).is_file() or not filecmp.cmp(p, reference / p.name, shallow=False))
    )
    return {
        "shards_compared": len(shard_names),
        "shards_differing": differing,
        "other_files_differing": others,
    }


@contextlib.contextmanager
def grown_list(path: Path, growth: Path) -> Iterator[None]:
    """The list file as a hotline's next daily file: the same path and name, the previous lines plus
    the new ones (the bank is the file, so this makes its next version). The original file comes back
    afterwards, so the next round's first run reads what the first round's did."""
    keep = path.with_name(path.name + ".before-update")
    grown = path.with_name(path.name + ".grown")
    shutil.copyfile(path, grown)
    with open(grown, "ab") as fh:
        fh.write(growth.read_bytes())
    keep.unlink(missing_ok=True)
    os.link(path, keep)
    os.replace(grown, path)
    try:
        yield
    finally:
        os.replace(keep, path)


def write_growth(path: Path, count: int, seed: int) -> Path:
    """``count`` random MD5-sized values, one hex line each, to be appended to a list file: values
    no generated URL hashes to (a collision among 2^128 values is not a practical concern)."""
    from expunge.demo import synth

    raw = synth.random_digests(count, DIGEST_WIDTH, seed=seed).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(raw[i : i + DIGEST_WIDTH].hex() + "\n" for i in range(0, len(raw), DIGEST_WIDTH)))
    return path


def update_release(
    *,
    dataset: Path,
    list_path: Path,
    store: Path,
    out: Path,
    growth: Path,
    workers: int,
    shard_names: list[str],
    scratch: Path,
    timeout: float,
) -> dict[str, Any]:
    """Append ``growth`` to the list file, run the first run's very command again as a process (timed),
    and check what it did: which files of OUT it replaced, how the manifest's entries changed, and that
    the release equals, shard for shard, a run from scratch with the grown list (a fresh store holding
    the same key; not timed)."""
    cmd = clean_command(dataset, list_path, store, out, workers)
    manifest_before, before = _manifest_files(out), snapshot(out)
    fresh_store, fresh_out = scratch / "store", scratch / "out"
    with grown_list(list_path, growth):
        run = run_process(cmd, timeout)
        after, manifest_after = snapshot(out), _manifest_files(out)
        summary = json.loads((out / "summary.json").read_text())
        stages = _ledger_stages(store, "clean")
        _fresh(fresh_store, fresh_out)
        fresh_store.mkdir(parents=True)
        shutil.copy2(store / "key", fresh_store / "key")
        fresh = run_process(clean_command(dataset, list_path, fresh_store, fresh_out, workers), timeout)
        same = compare_releases(out, fresh_out, shard_names)
        fresh_summary = json.loads((fresh_out / "summary.json").read_text())
    _fresh(scratch)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    shard_set = set(shard_names)
    entries = sorted(
        k
        for k in manifest_before.keys() | manifest_after.keys()
        if k in shard_set and manifest_before.get(k) != manifest_after.get(k)
    )
    return {
        "seconds": run["seconds"],
        "command": " ".join(cmd),
        "list_lines_added": sum(1 for _ in growth.open("rb")),
        "rows_removed": summary["rows_removed"],
        "rows_quarantined": summary["rows_quarantined"],
        # The summary describes the release (shards that differ from their source), not this run's writes.
        "shards_differing_from_source": summary["shards_rewritten"],
        "shards_replaced": [k for k in changed if k in shard_set],
        "other_files_replaced": [k for k in changed if k not in shard_set],
        "manifest_shard_entries_changed": entries,
        "stages": stages,
        "outside_stages_seconds": run["seconds"] - sum(s["seconds"] for s in stages.values()),
        "from_scratch": {
            "seconds": fresh["seconds"],
            "rows_removed": fresh_summary["rows_removed"],
            **same,
        },
        "identical_to_from_scratch": not same["shards_differing"],
        "memory": run["memory"],
        "cpu": run["cpu"],
    }


def valid_url_mask(urls: pa.Array) -> np.ndarray:
    """Rows whose URL is never quarantined under the raw recipe (scheme, a dotted host, a path)."""
    mask = pc.fill_null(pc.match_substring_regex(urls, QUARANTINE_FREE), False)
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def pick_digests(shards: list[str], planted: int) -> np.ndarray:
    """MD5s of ``planted`` distinct URLs spread evenly over ``shards`` (evenly spaced within each):
    the rows a bank built from them must remove."""
    per_shard = [planted // len(shards) + (1 if i < planted % len(shards) else 0) for i in range(len(shards))]
    values: list[bytes] = []
    for shard, k in zip(shards, per_shard, strict=True):
        if not k:
            continue
        urls = pq.read_table(shard, columns=[URL_COLUMN]).column(0).combine_chunks()
        rows = np.flatnonzero(valid_url_mask(urls))
        chosen = rows[:: max(1, len(rows) // k)][:k]
        values.extend(urls.take(pa.array(chosen)).cast(pa.binary()).to_pylist())
    digests = _digests_of(values)
    if len(np.unique(digests)) != planted:
        raise BenchError("the planted URLs are not distinct")
    return digests


def _strip_task(job: tuple[str, str]) -> int:
    """Copy one shard without the rows expunge would quarantine, keeping its row groups and codec."""
    src, dst = job
    pf = pq.ParquetFile(src)
    table = pf.read()
    size = pf.metadata.row_group(0).num_rows if pf.metadata.num_row_groups else 10_000
    kept = table.filter(pa.array(valid_url_mask(table.column(URL_COLUMN))))
    pq.write_table(kept, dst, row_group_size=size, compression="zstd")
    return int(kept.num_rows)


def one_shard_layout(shards: list[str], dst: Path, workers: int) -> list[Path]:
    """The realistic layout: every shard but the first loses its quarantine cases, so that a bank
    whose hits all lie in the first shard leaves the others untouched (hard-linked, not rewritten).
    The first shard is copied as it is. Built once, untimed."""
    dst.mkdir(parents=True, exist_ok=True)
    first = dst / Path(shards[0]).name
    shutil.copyfile(shards[0], first)
    jobs = [(s, str(dst / Path(s).name)) for s in shards[1:]]
    with multiprocessing.get_context("forkserver").Pool(workers) as pool:
        list(pool.imap_unordered(_strip_task, jobs, chunksize=1))
    return [first, *(Path(j[1]) for j in jobs)]


# --------------------------------------------------------------------------------------------------
# Steps. Each runs in its own subprocess, reads plan.json and returns a JSON-able dict.


def _load_plan(workdir: Path) -> dict[str, Any]:
    plan: dict[str, Any] = json.loads((workdir / "plan.json").read_text())
    return plan


def _fresh(*paths: Path) -> None:
    for path in paths:
        if path.exists():
            shutil.rmtree(path)


def _ledger_stages(store: Path, command: str) -> dict[str, Any]:
    """Per-stage seconds and counts from the newest ledger record of ``command`` in ``store``."""
    records = sorted((store / "runs").glob(f"*-{command}.json"))
    if not records:
        return {}
    stages = json.loads(records[-1].read_text())["stages"]
    return {
        s["stage"]: {"seconds": s["seconds"], "shards_run": s["shards_run"], "details": s["details"]}
        for s in stages
    }


def _step_clean(plan: dict[str, Any], dataset: str, bank_list: str, recipe: str, tag: str) -> dict[str, Any]:
    """(a), (b) and (a) at the small size: the one-shot flow, list import included, in a fresh store."""
    from expunge import api

    work = Path(plan["workdir"])
    store, out = work / f"store_{tag}", work / f"out_{tag}"
    _fresh(store, out)
    data = plan["datasets"][dataset]
    opts = api.Options(store=store, workers=plan["workers"])
    spec = f"{plan['lists'][bank_list]}:url_md5:{recipe}"
    with StepMonitor() as monitor:
        started = time.perf_counter()
        summary = api.clean([data["dir"]], out, lists=[spec], opts=opts)
        seconds = time.perf_counter() - started
    stages = _ledger_stages(store, "clean")
    return {
        "seconds": seconds,
        "rows": data["rows"],
        "rows_in": summary["rows_in"],
        "rows_removed": summary["rows_removed"],
        "rows_quarantined": summary["rows_quarantined"],
        "shards_rewritten": summary["shards_rewritten"],
        "shards_copied": summary["shards_copied"],
        "stages": stages,
        "import_and_overhead_seconds": seconds - sum(s["seconds"] for s in stages.values()),
        "memory": _memory_report(monitor),
        "cpu": monitor.result,
    }


def step_a(plan: dict[str, Any]) -> dict[str, Any]:
    return _step_clean(plan, "main", "raw", "raw", "a")


def step_b(plan: dict[str, Any]) -> dict[str, Any]:
    return _step_clean(plan, "main", "canonical", "canonical", "b")


def step_a_small(plan: dict[str, Any]) -> dict[str, Any]:
    return _step_clean(plan, "small", "small_raw", "raw", "a_small")


def step_a_one(plan: dict[str, Any]) -> dict[str, Any]:
    return _step_clean(plan, "one", "one_raw", "raw", "a_one")


def step_c(plan: dict[str, Any]) -> dict[str, Any]:
    """Grow the bank of (a) by re-importing a bigger file under the same name, then time the re-match.

    Works on a copy of (a)'s store, taken before the import, so that every round starts from the
    state (a) left behind; the copy is not timed.
    """
    from expunge import api

    work = Path(plan["workdir"])
    if not (work / "store_a" / "runs").is_dir():
        raise BenchError("step c needs the store of step a")
    store = work / "store_c"
    _fresh(store)
    shutil.copytree(work / "store_a", store)
    data = plan["datasets"]["main"]
    started = time.perf_counter()
    imported = api.import_list(
        plan["lists"]["raw_grown"], store=store, name=plan["bank_name"], signal="url_md5", recipe="raw"
    )
    import_seconds = time.perf_counter() - started
    watch = DirWatch(Path(data["dir"]))
    try:
        with StepMonitor() as monitor:
            started = time.perf_counter()
            result = api.match([data["dir"]], opts=api.Options(store=store, workers=plan["workers"]))
            seconds = time.perf_counter() - started
        events = watch.drain()
    finally:
        watch.close()
    stage = result["stage"]
    return {
        "seconds": seconds,
        "import_seconds": import_seconds,
        "import": {"version": imported.version, "count": imported.count, "added": imported.added},
        "rows_matched": result["rows_matched_by_bank"].get(plan["bank_name"]),
        "match_modes": stage.details.get("modes", {}),
        "stages": _ledger_stages(store, "match"),
        "dataset_file_events": events,
        "memory": _memory_report(monitor),
        "cpu": monitor.result,
    }


def step_canon(plan: dict[str, Any]) -> dict[str, Any]:
    """Canonicalisation rate on one shard in this one process, and how much took the fast path."""
    from expunge.features import urlcanon

    pa.set_cpu_count(1)  # one core: Arrow kernels on one array run in this thread anyway
    shard = plan["datasets"]["main"]["shards"][0]
    urls = pq.read_table(shard, columns=[URL_COLUMN]).column(0).combine_chunks()
    n = len(urls)
    binary = urls.view(pa.binary())
    fast = pc.match_substring_regex(binary, urlcanon.FAST_PATH_PATTERN).fill_null(True)
    fast_rows = int(pc.sum(fast).as_py() or 0)
    slow_urls = binary.filter(pc.invert(fast))

    def timed(fn: Callable[[], object]) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - wall, time.process_time() - cpu

    with StepMonitor() as monitor:
        runs = [timed(lambda: urlcanon.canonicalize_array(urls)) for _ in range(CANON_REPEATS)]
        regex_wall = min(
            timed(lambda: pc.match_substring_regex(binary, urlcanon.FAST_PATH_PATTERN))[0]
            for _ in range(CANON_REPEATS)
        )
        slow_wall = min(
            timed(lambda: urlcanon.canonicalize_array(slow_urls))[0] for _ in range(CANON_REPEATS)
        )
    best_wall, best_cpu = min(runs)
    return {
        "urls": n,
        "runs_seconds": [r[0] for r in runs],
        "urls_per_s": n / best_wall,
        "urls_per_cpu_s": n / best_cpu,
        "fast_path_rows": fast_rows,
        "fast_path_share": fast_rows / n if n else 0.0,
        "slow_path_rows": len(slow_urls),
        "fast_check_urls_per_s": n / regex_wall,
        "slow_path_urls_per_s": len(slow_urls) / slow_wall if slow_wall else 0.0,
        "slow_path_seconds": slow_wall,
        "memory": _memory_report(monitor),
        "cpu": monitor.result,
    }


def _sql_str(path: str | Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def step_d(plan: dict[str, Any], layout: str = "every") -> dict[str, Any]:
    """DuckDB baseline: load the list as a table (timed apart), then ONE ``COPY`` does the whole job."""
    import duckdb

    work = Path(plan["workdir"])
    spec = LAYOUT_DATA[layout]
    out = work / ("out_d" if layout == "every" else f"out_d_{layout}")
    _fresh(out)
    data = plan["datasets"][spec["dataset"]]
    con = duckdb.connect(config={"threads": plan["workers"]})
    started = time.perf_counter()
    con.execute(
        "CREATE TABLE bank AS SELECT h FROM read_csv("
        f"{_sql_str(plan['lists'][spec['list']])}, header=false, comment='#', columns={{'h': 'VARCHAR'}})"
    )
    load_seconds = time.perf_counter() - started
    bank_rows = con.execute("SELECT count(*) FROM bank").fetchone()
    glob = _sql_str(Path(data["dir"]) / "*.parquet")
    # The shard's file name is the partition key: one output file set per input shard, same zstd.
    sql = (
        "COPY (SELECT t.* EXCLUDE (filename), regexp_extract(t.filename, '[^/]+$') AS shard "
        f"FROM read_parquet({glob}, filename=true) AS t "
        "ANTI JOIN bank ON md5(t.URL) = bank.h) "
        f"TO {_sql_str(out)} (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (shard))"
    )
    with StepMonitor() as monitor:
        started = time.perf_counter()
        written = con.execute(sql).fetchone()
        seconds = time.perf_counter() - started
    con.close()
    files = sorted(f for f in out.rglob("*.parquet") if f.is_file())
    rows_out = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return {
        "seconds": seconds,
        "load_seconds": load_seconds,
        "bank_rows": bank_rows[0] if bank_rows else None,
        "rows_in": data["rows"],
        "rows_written": written[0] if written else None,
        "rows_out": rows_out,
        "rows_dropped": data["rows"] - rows_out,
        "output_files": len(files),
        "output_partitions": len({f.parent.name for f in files}),
        "sql": sql,
        "memory": _memory_report(monitor),
        "cpu": monitor.result,
    }


def _floor_task(job: tuple[str, str]) -> int:
    """Read one shard's URL column and md5 every URL: the least work any URL-digest tool must do."""
    path, column = job
    md5 = hashlib.md5
    hashed = 0
    for batch in pq.ParquetFile(path).iter_batches(columns=[column]):
        for value in batch.column(0).view(pa.binary()).to_pylist():
            if value is not None:
                md5(value).digest()
                hashed += 1
    return hashed


def _rewrite_task(job: tuple[str, str]) -> int:
    """Read every column of one shard and write it back, zstd, same row groups: the least work any
    tool must do when a shard loses rows (the filter itself is nearly free)."""
    src, dst = job
    pf = pq.ParquetFile(src)
    size = pf.metadata.row_group(0).num_rows if pf.metadata.num_row_groups else 1
    rows = 0
    with pq.ParquetWriter(dst, pf.schema_arrow, compression="zstd") as writer:
        for i in range(pf.metadata.num_row_groups):
            table = pf.read_row_group(i)
            writer.write_table(table, row_group_size=size)
            rows += table.num_rows
    return rows


def _pool_step(
    fn: Callable[[tuple[str, str]], int], jobs: list[tuple[str, str]], workers: int
) -> dict[str, Any]:
    """Run a floor on the same kind of pool expunge uses (forkserver, one shard per task)."""
    ctx = multiprocessing.get_context("forkserver")
    with StepMonitor() as monitor:
        started = time.perf_counter()
        with ctx.Pool(workers) as pool:
            count = sum(pool.imap_unordered(fn, jobs, chunksize=1))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "count": count, "memory": _memory_report(monitor), "cpu": monitor.result}


def step_e(plan: dict[str, Any], layout: str = "every") -> dict[str, Any]:
    jobs = [(s, URL_COLUMN) for s in plan["datasets"][LAYOUT_DATA[layout]["dataset"]]["shards"]]
    return _pool_step(_floor_task, jobs, plan["workers"])


def step_f(plan: dict[str, Any]) -> dict[str, Any]:
    out = Path(plan["workdir"]) / "out_f"
    _fresh(out)
    out.mkdir()
    jobs = [(s, str(out / Path(s).name)) for s in plan["datasets"]["main"]["shards"]]
    return _pool_step(_rewrite_task, jobs, plan["workers"])


def step_update(plan: dict[str, Any], layout: str = "every") -> dict[str, Any]:
    """The daily update: the list file gains non-matching hashes, the same command runs again.

    It runs on the first run's own store and ``--out``, not on copies of them: a bank is the list
    file's absolute path (another path is another bank) and a release's private state is keyed by
    OUT's resolved path (another folder is a new release), so a copy elsewhere would measure a first
    run, not an update. Every round's first run starts from nothing, so nothing carries over.
    """
    spec = LAYOUT_DATA[layout]
    work = Path(plan["workdir"])
    store, out = work / f"store_{spec['first']}", work / f"out_{spec['first']}"
    if not (store / "runs").is_dir() or not (out / "MANIFEST.json").is_file():
        raise BenchError(f"the update of layout {layout} needs the store and release of its first run")
    data = plan["datasets"][spec["dataset"]]
    return update_release(
        dataset=Path(data["dir"]),
        list_path=Path(plan["lists"][spec["list"]]),
        store=store,
        out=out,
        growth=Path(plan["lists"]["growth"]),
        workers=plan["workers"],
        shard_names=[Path(s).name for s in data["shards"]],
        scratch=work / f"verify_{layout}",
        timeout=float(plan.get("timeout", 1800.0)),
    )


def step_cli_start(plan: dict[str, Any]) -> dict[str, Any]:
    """Wall time of the CLI's help screens as a process (best of ``CLI_REPEATS``), and of a bare
    interpreter for scale: what every command pays before it does any work."""
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "expunge --help": [sys.executable, "-m", "expunge.cli", "--help"],
        "expunge clean --help": [sys.executable, "-m", "expunge.cli", "clean", "--help"],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    with StepMonitor() as monitor:
        for _ in range(CLI_REPEATS):
            for label, cmd in commands.items():
                started = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, check=False)
                times[label].append(time.perf_counter() - started)
                if proc.returncode != 0:
                    raise BenchError(f"{label} exited {proc.returncode}: {proc.stderr[-2000:]!r}")
    best = {k: min(v) for k, v in times.items()}
    return {
        "seconds": max(best["expunge --help"], best["expunge clean --help"]),
        "best": best,
        "all": times,
        "python": sys.executable,
        "memory": _memory_report(monitor),
        "cpu": monitor.result,
    }


STEPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "a": step_a,
    "b": step_b,
    "c": step_c,
    "canon": step_canon,
    "cli_start": step_cli_start,
    "d": step_d,
    "e": step_e,
    "f": step_f,
    "update": step_update,
    "a.one": step_a_one,
    "d.one": lambda plan: step_d(plan, "one"),
    "e.one": lambda plan: step_e(plan, "one"),
    "update.one": lambda plan: step_update(plan, "one"),
    "a_small": step_a_small,
}


def run_step_here(name: str, workdir: Path) -> None:
    """Entry point of ``--step NAME``: run one step and leave its result in results/NAME.json."""
    result = STEPS[name](_load_plan(workdir))
    out = workdir / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))


# --------------------------------------------------------------------------------------------------
# Orchestration: data, banks, steps in subprocesses, report.


def _digests_of(values: list[bytes]) -> np.ndarray:
    """MD5 of each value as an ``S16`` array, built from the joined bytes so no NUL byte is lost."""
    joined = b"".join(hashlib.md5(v, usedforsecurity=False).digest() for v in values)
    return np.frombuffer(joined, dtype=f"S{DIGEST_WIDTH}").copy()


def _bank(random: np.ndarray, planted: np.ndarray, seed: int) -> np.ndarray:
    """Random digests plus the planted ones, shuffled so the planted ones are not bunched together."""
    combined = np.concatenate([random, planted])
    return combined[np.random.default_rng(seed).permutation(len(combined))]


def _generate(root: Path, rows: int, shards: int, planted: int, seed: int) -> tuple[dict[str, Any], Any]:
    from expunge.demo import synth

    started = time.perf_counter()
    ds = synth.generate_dataset(root, rows=rows, shards=shards, seed=seed, flagged=planted, utf8_only=True)
    info = {
        "dir": str(root),
        "rows": rows,
        "shards": [str(p) for p in ds.shards],
        "planted": len(ds.flagged),
        "quarantine_rows": ds.quarantine_rows,
        "bytes": sum(p.stat().st_size for p in ds.shards),
        "generate_seconds": time.perf_counter() - started,
    }
    return info, ds


def prepare(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Generate the datasets and list files every step shares, and write plan.json."""
    from expunge.demo import synth

    lists_dir = work / "lists"
    for sub in ("grown", "small", "one"):
        (lists_dir / sub).mkdir(parents=True)
    _log(f"generating {args.rows:,} rows in {args.shards} shards ...")
    main_info, ds = _generate(work / "data", args.rows, args.shards, args.planted, args.seed)
    _log(f"  {main_info['bytes'] / MIB:,.0f} MiB in {main_info['generate_seconds']:.1f} s")
    random = synth.random_digests(args.bank - args.planted, DIGEST_WIDTH, seed=args.seed + 1)
    raw = _bank(random, _digests_of([ds.listed[f].raw for f in ds.flagged]), args.seed)
    canonical = _bank(random, _digests_of([ds.listed[f].canonical.encode() for f in ds.flagged]), args.seed)
    grown = np.concatenate([raw, synth.random_digests(GROWTH, DIGEST_WIDTH, seed=args.seed + 2)])
    lists = {
        "raw": synth.write_digest_list(lists_dir / "bank_raw.txt", raw, "plain"),
        "canonical": synth.write_digest_list(lists_dir / "bank_canonical.txt", canonical, "plain"),
        # Same file name in another folder: the same bank name, a newer version of the list.
        "raw_grown": synth.write_digest_list(lists_dir / "grown" / "bank_raw.txt", grown, "plain"),
    }
    lists["growth"] = write_growth(lists_dir / "growth.txt", GROWTH, seed=args.seed + 2)
    datasets = {"main": main_info}
    if "one" in args.layouts:
        _log("one-shard layout: the first shard as it is, the others without their quarantine cases ...")
        started = time.perf_counter()
        one_shards = one_shard_layout(main_info["shards"], work / "data_one", args.workers)
        picks = pick_digests([str(one_shards[0])], args.planted)
        one_bank = _bank(random, picks, args.seed)
        lists["one_raw"] = synth.write_digest_list(lists_dir / "one" / "bank_raw.txt", one_bank, "plain")
        first_urls = pq.read_table(one_shards[0], columns=[URL_COLUMN]).column(0)
        datasets["one"] = {
            "dir": str(work / "data_one"),
            "rows": sum(pq.ParquetFile(p).metadata.num_rows for p in one_shards),
            "shards": [str(p) for p in one_shards],
            "planted": args.planted,
            "quarantine_rows": int(len(first_urls) - valid_url_mask(first_urls.combine_chunks()).sum()),
            "bytes": sum(p.stat().st_size for p in one_shards),
            "generate_seconds": time.perf_counter() - started,
        }
        _log(f"  {datasets['one']['rows']:,} rows in {datasets['one']['generate_seconds']:.1f} s")
    if args.small_rows:
        _log(f"generating {args.small_rows:,} rows in {args.shards} shards ...")
        small_info, small = _generate(
            work / "data_small", args.small_rows, args.shards, args.planted, args.seed
        )
        small_raw = _bank(random, _digests_of([small.listed[f].raw for f in small.flagged]), args.seed)
        lists["small_raw"] = synth.write_digest_list(lists_dir / "small" / "bank_raw.txt", small_raw, "plain")
        datasets["small"] = small_info
    plan = {
        "workdir": str(work),
        "workers": args.workers,
        "planted": args.planted,
        "bank_size": args.bank,
        "bank_name": "bank_raw",
        "layouts": list(args.layouts),
        "timeout": args.timeout,
        "datasets": datasets,
        "lists": {k: str(v) for k, v in lists.items()},
    }
    (work / "plan.json").write_text(json.dumps(plan, indent=2))
    return plan


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _other_load(seconds: float) -> float:
    """Cores' worth of CPU that other processes use over ``seconds`` (this process sleeps meanwhile)."""
    before, own = _machine_busy_ticks(), os.times()
    time.sleep(seconds)
    after, own_after = _machine_busy_ticks(), os.times()
    mine = (own_after.user + own_after.system) - (own.user + own.system)
    return max(0.0, (after - before) / CLK_TCK - mine) / seconds


class QuietGate:
    """Waits, within a budget, until the machine is nearly idle before each step.

    On a two-core machine one busy neighbour (a test run, a build) can double a step's time; waiting
    for a quiet moment costs seconds and makes the figures far more repeatable. The budget keeps a
    busy machine from stretching the run without limit; a step that could not wait is still run, and
    its record shows how loaded the machine was.
    """

    def __init__(self, per_step: float, budget: float, threshold: float = 0.25) -> None:
        self.per_step, self.budget, self.threshold = per_step, budget, threshold
        self.waited = 0.0

    def wait(self) -> None:
        deadline = time.perf_counter() + min(self.per_step, max(0.0, self.budget - self.waited))
        started = time.perf_counter()
        while _other_load(0.5) > self.threshold and time.perf_counter() < deadline:
            pass
        self.waited += time.perf_counter() - started


def run_step(work: Path, name: str, timeout: float) -> dict[str, Any]:
    """Run one step in a fresh interpreter (its own memory peak, no state carried between steps)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", name, "--workdir", str(work)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"step {name} took longer than {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise BenchError(f"step {name} failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
    result: dict[str, Any] = json.loads((work / "results" / f"{name}.json").read_text())
    note = f"{result['seconds']:.2f} s" if "seconds" in result else f"{result['urls_per_s']:,.0f} URLs/s"
    _log(f"  {STEP_TITLES[name]}: {note} (other processes: {result['cpu']['other_cores']:.2f} cores)")
    return result


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One step's rounds as one record: the fastest round's figures, every round's time and load,
    and the highest memory peak seen in any round."""
    fastest = min(range(len(runs)), key=lambda i: float(runs[i].get("seconds", 0.0)))
    best: dict[str, Any] = dict(runs[fastest])
    best["all_seconds"] = [run.get("seconds") for run in runs]
    best["all_other_cores"] = [run["cpu"]["other_cores"] for run in runs]
    best["all_own_cpu"] = [run["cpu"]["own_cpu_s"] for run in runs]
    best["min_own_cpu"] = min(best["all_own_cpu"])
    memory = dict(best["memory"])
    for key in ("main_mib", "workers_max_mib", "helpers_max_mib"):
        memory[key] = max(run["memory"].get(key, 0.0) for run in runs)
    best["memory"] = memory
    best["rounds"] = runs
    return best


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _versions() -> dict[str, str]:
    import duckdb

    import expunge

    return {
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "duckdb": duckdb.__version__,
        "numpy": np.__version__,
        "expunge": getattr(expunge, "__version__", "?"),
    }


def _expunge_source() -> str:
    """Which expunge was measured: its folder, and the git commit when it is a checkout (read-only git
    calls), marked dirty when its files differ from that commit."""
    import expunge

    folder = Path(expunge.__file__).resolve().parent
    git = ["git", "-C", str(folder)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        if head.returncode != 0:
            return str(folder)
        dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "."], capture_output=True)
    except OSError:
        return str(folder)
    return f"{folder} at {head.stdout.strip()}{' (with uncommitted changes)' if dirty.returncode else ''}"


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def _curve_target(curve: dict[str, Any] | None) -> dict[str, Any] | None:
    """bench_curve.py's judgement of the update against the first run at its largest size."""
    for row in (curve or {}).get("targets", []):
        if row.get("key") == "update_vs_first_at_largest":
            return dict(row)
    return None


def evaluate(
    plan: dict[str, Any], r: dict[str, dict[str, Any]], curve: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Figures with their targets, and the list of failed correctness checks (over every round)."""
    secs = {k: v["seconds"] for k, v in r.items() if "seconds" in v}
    rows: list[dict[str, Any]] = []

    def add(label: str, value: float | None, unit: str, target: str = "", ok: bool | None = None) -> None:
        rows.append({"figure": label, "value": value, "unit": unit, "target": target, "met": ok})

    def at_most(label: str, value: float | None, limit: float, unit: str = "x", shown: str = "") -> None:
        add(label, value, unit, shown or f"<= {limit:g}", None if value is None else value <= limit)

    def at_least(label: str, value: float | None, limit: float, strict: bool = False) -> None:
        ok = None if value is None else (value > limit if strict else value >= limit)
        add(label, value, "x", f"{'>' if strict else '>='} {limit:g}", ok)

    for key in ROUND_STEPS:
        if key in secs:
            add(STEP_TITLES[key], secs[key], "s")
    if "a" in r:
        add("(a) without the list import (index+match+clean stages)", _stage_sum(r["a"]), "s")
    if "d" in r:
        add("(d) loading the list into DuckDB (not in (d))", r["d"]["load_seconds"], "s")
    if "c" in r:
        add("(c) re-import of the grown list (not in (c))", r["c"]["import_seconds"], "s")

    if "a" in secs:  # hits in every shard
        add("every shard: (a)/(e) (reference, no target)", _ratio(secs.get("a"), secs.get("e")), "x")
        add("every shard: (a)/(f) (reference, no target)", _ratio(secs.get("a"), secs.get("f")), "x")
        ef = secs["e"] + secs["f"] if "e" in secs and "f" in secs else None
        at_most("every shard: (a)/((e)+(f))", _ratio(secs["a"], ef), 1.3)
        at_least(
            "every shard: (d)/(a), faster than DuckDB", _ratio(secs.get("d"), secs["a"]), 1.0, strict=True
        )
        at_most("(c)/(a)", _ratio(secs.get("c"), secs["a"]), 0.05)
        add("every shard: update/(a) (reference, no target)", _ratio(secs.get("update"), secs["a"]), "x")
    if "a.one" in secs:  # hits in one shard
        at_most("one shard: (a)/(e)", _ratio(secs["a.one"], secs.get("e.one")), 1.5)
        at_least("one shard: (d)/(a)", _ratio(secs.get("d.one"), secs["a.one"]), 2.0)
        add(
            "one shard: update/(a) (reference, no target)", _ratio(secs.get("update.one"), secs["a.one"]), "x"
        )
    judged = _curve_target(curve)
    if judged is not None:
        add(
            f"update/first run at {judged.get('rows', 0):,} rows (bench_curve)",
            judged["value"],
            "x",
            judged.get("target", "<= 0.1"),
            judged.get("met"),
        )
    else:
        add("update/first run at 20M rows (bench_curve.py; give --curve)", None, "x", "<= 0.1")
    if "cli_start" in r:
        best = r["cli_start"]["best"]
        add("bare interpreter start (python -c pass), for scale", best["python -c pass"], "s")
        at_most("CLI start: expunge --help", best["expunge --help"], 0.5, "s", "< 0.5 s")
        at_most("CLI start: expunge clean --help", best["expunge clean --help"], 0.5, "s", "< 0.5 s")

    # The same ratios in CPU-seconds of each step's process tree: far less sensitive to neighbours on
    # a shared machine than wall time, though blind to idle cores (a serial phase costs no extra CPU).
    cpu = {k: v["min_own_cpu"] for k, v in r.items() if "min_own_cpu" in v and "seconds" in v}
    add("cross-check: (a)/(e) in CPU-seconds", _ratio(cpu.get("a"), cpu.get("e")), "x")
    add("cross-check: (d)/(a) in CPU-seconds", _ratio(cpu.get("d"), cpu.get("a")), "x")
    add("cross-check: (c)/(a) in CPU-seconds", _ratio(cpu.get("c"), cpu.get("a")), "x")
    if "a.one" in cpu:
        add("cross-check: one shard (a)/(e) in CPU-seconds", _ratio(cpu["a.one"], cpu.get("e.one")), "x")
        add("cross-check: one shard (d)/(a) in CPU-seconds", _ratio(cpu.get("d.one"), cpu["a.one"]), "x")
    if "canon" in r:
        canon = r["canon"]
        rate = canon["urls_per_s"]
        add("canonicalisation, URLs/s per core", rate, "URL/s", ">= 150,000", rate >= 150_000)
        add("  share of URLs on the fast path", canon["fast_path_share"] * 100, "%")
        add("  fast-path check alone, URLs/s", canon["fast_check_urls_per_s"], "URL/s")
        add("  slow path alone (non-fast URLs only), URLs/s", canon["slow_path_urls_per_s"], "URL/s")
    for key, dataset in (("a", "main"), ("a.one", "one"), ("a_small", "small")):
        if key in r:
            n = plan["datasets"][dataset]["rows"]
            main_mib, workers_mib = r[key]["memory"]["main_mib"], r[key]["memory"]["workers_max_mib"]
            at_most(f"peak RSS, process running {key}, {n:,} rows", main_mib, 1024, "MiB")
            at_most(f"peak RSS, largest worker of {key}, {n:,} rows", workers_mib, 1024, "MiB")
    for key in ("update", "update.one"):
        if key in r:
            at_most(f"peak RSS, largest process of {key}", r[key]["memory"]["peak_mib"], 1024, "MiB")

    return rows, _failures(plan, r)


def _failures(plan: dict[str, Any], r: dict[str, dict[str, Any]]) -> list[str]:
    """Correctness over every round: what each step removed, rewrote, re-read or published."""
    planted = plan["planted"]
    failures: list[str] = []
    main = plan["datasets"]["main"]
    for key in ("a", "b", "a.one", "a_small"):
        for run in r.get(key, {}).get("rounds", []):
            if run["rows_removed"] != planted:
                failures.append(f"({key}) removed {run['rows_removed']} rows, expected {planted}")
    for run in r.get("a.one", {}).get("rounds", []):
        if run["shards_rewritten"] != 1:
            failures.append(f"(a.one) rewrote {run['shards_rewritten']} shards, expected 1")
    for key in ("d", "d.one"):
        for run in r.get(key, {}).get("rounds", []):
            if run["rows_dropped"] != planted:
                failures.append(f"({key}) dropped {run['rows_dropped']} rows, expected {planted}")
    first = Path(main["shards"][0]).name
    for run in r.get("c", {}).get("rounds", []):
        if run["rows_matched"] != planted:
            failures.append(f"(c) matched {run['rows_matched']} rows, expected {planted}")
        # Column detection opens the first shard for its schema (footer); anything more is a re-read.
        ev = run["dataset_file_events"]
        reindexed = run["stages"].get("index", {}).get("shards_run")
        if ev["overflow"] or set(ev["files"]) - {first} or reindexed != 0:
            failures.append(f"(c) re-read the dataset: index ran on {reindexed} shards, file events {ev}")
    for key, dataset in (("e", "main"), ("e.one", "one")):
        data = plan["datasets"].get(dataset)
        for run in r.get(key, {}).get("rounds", []):
            if not data["rows"] - data["quarantine_rows"] <= run["count"] <= data["rows"]:  # nulls skipped
                failures.append(f"({key}) hashed {run['count']} URLs")
    for run in r.get("f", {}).get("rounds", []):
        if run["count"] != main["rows"]:
            failures.append(f"(f) rewrote {run['count']} rows")
    for key in ("update", "update.one"):
        for run in r.get(key, {}).get("rounds", []):
            failures.extend(f"({key}) {problem}" for problem in update_problems(run, planted))
    return failures


def update_problems(run: dict[str, Any], planted: int) -> list[str]:
    """What a non-matching list update must not do: change what is removed, rewrite a shard, change a
    shard's manifest entry, or publish anything but a from-scratch run's shards."""
    problems = []
    if run["rows_removed"] != planted or run["from_scratch"]["rows_removed"] != planted:
        problems.append(
            f"removed {run['rows_removed']} rows (from scratch {run['from_scratch']['rows_removed']}), "
            f"expected {planted}"
        )
    if run["shards_replaced"]:
        problems.append(f"rewrote shards {run['shards_replaced']}")
    if run["manifest_shard_entries_changed"]:
        problems.append(f"changed the manifest entries of {run['manifest_shard_entries_changed']}")
    if not run["identical_to_from_scratch"]:
        problems.append(f"differs from a from-scratch run in {run['from_scratch']['shards_differing']}")
    return problems


def _stage_sum(run: dict[str, Any]) -> float:
    return float(sum(s["seconds"] for s in run["stages"].values()))


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "s":
        return f"{value:,.2f} s"
    if unit == "x":
        return f"{value:.3f}"
    if unit == "URL/s":
        return f"{value:,.0f} URL/s"
    if unit == "%":
        return f"{value:.2f} %"
    return f"{value:,.0f} {unit}"


def _mem(m: dict[str, Any]) -> str:
    return (
        f"main {m['main_mib']:.0f} MiB, largest worker {m.get('workers_max_mib', 0):.0f} MiB, "
        f"forkserver {m.get('helpers_max_mib', 0):.0f} MiB"
    )


def print_report(
    meta: dict[str, Any],
    plan: dict[str, Any],
    r: dict[str, dict[str, Any]],
    curve: dict[str, Any] | None = None,
) -> list[str]:
    rows, failures = evaluate(plan, r, curve)
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    print(f"\nexpunge URL benchmark, {meta['date']}; {meta['cpu']}, {meta['cores']} cores; {versions}")
    print(f"command: {meta['command']}; expunge from {meta['expunge_source']}")
    main = plan["datasets"]["main"]
    print(
        f"data: {main['rows']:,} rows, {len(main['shards'])} shards, {main['bytes'] / MIB:,.0f} MiB zstd, "
        f"{main['quarantine_rows']:,} quarantine rows; bank {plan['bank_size']:,} MD5s incl. "
        f"{plan['planted']:,} planted; workers {plan['workers']}; best of {meta['repeat']} rounds; "
        f"waited {meta.get('quiet_wait_seconds', 0.0):.0f} s in all for other processes to go quiet"
    )
    if "one" in plan["datasets"]:
        one = plan["datasets"]["one"]
        print(
            f"one-shard layout: {one['rows']:,} rows, {len(one['shards'])} shards; the first shard as "
            f"generated, all {plan['planted']:,} planted hits in it; the others without quarantine cases"
        )
    print()
    width = max(len(row["figure"]) for row in rows) + 2
    print(f"{'figure':<{width}}{'value':>18}  {'target':>10}  met")
    for row in rows:
        met = "" if row["met"] is None else ("yes" if row["met"] else "NO")
        print(f"{row['figure']:<{width}}{_fmt(row['value'], row['unit']):>18}  {row['target']:>10}  {met}")

    print("\nevery round: wall seconds (own CPU-seconds, other processes' average load in cores):")
    for key in ROUND_STEPS:
        if key in r:
            step = r[key]
            runs = zip(step["all_seconds"], step["all_own_cpu"], step["all_other_cores"], strict=True)
            print(f"  {key:8} " + ", ".join(f"{s:.2f} s ({c:.1f}, {o:.2f})" for s, c, o in runs))
    for key in ("a", "b", "a.one", "a_small"):
        if key in r:
            run = r[key]
            stages = ", ".join(f"{k} {v['seconds']:.2f} s" for k, v in run["stages"].items())
            extra = run["import_and_overhead_seconds"]
            print(
                f"\n{key} (best round): {stages}, list import + overhead {extra:.2f} s;"
                f" removed {run['rows_removed']}, quarantined {run['rows_quarantined']}, "
                f"rewritten {run['shards_rewritten']}; memory (max of rounds) {_mem(run['memory'])}"
            )
    if "c" in r:
        c = r["c"]
        print(
            f"\nc (best round): import v{c['import']['version']} (+{c['import']['added']:,}) "
            f"{c['import_seconds']:.2f} s; match {c['seconds']:.2f} s, modes {c['match_modes']}, "
            f"rows matched {c['rows_matched']}, dataset file events {c['dataset_file_events']}; "
            f"memory {_mem(c['memory'])}"
        )
    for key in ("update", "update.one"):
        if key in r:
            print("\n" + describe_update(key, r[key]))
    if "cli_start" in r:
        k = r["cli_start"]
        print(
            "\ncli_start (best of 5, wall): "
            + ", ".join(f"{label} {best:.3f} s" for label, best in k["best"].items())
            + f"; interpreter {k['python']}"
        )
    if "canon" in r:
        k = r["canon"]
        print(
            f"\ncanon: {k['urls']:,} URLs, runs {', '.join(f'{s:.3f}' for s in k['runs_seconds'])} s, "
            f"{k['urls_per_cpu_s']:,.0f} URLs per CPU-second; {k['slow_path_rows']:,} URLs off the fast "
            f"path took {k['slow_path_seconds']:.3f} s"
        )
    if "d" in r:
        d = r["d"]
        print(
            f"\nd: {d['rows_dropped']} rows dropped, {d['output_files']} files in {d['output_partitions']} "
            f"partitions; memory {_mem(d['memory'])}\n   {d['sql']}"
        )
    for key in ("e", "f"):
        if key in r:
            what = "URLs hashed" if key == "e" else "rows rewritten"
            print(f"\n{key}: {r[key]['count']:,} {what}; memory {_mem(r[key]['memory'])}")
    print("\ncorrectness: " + ("all checks passed" if not failures else "; ".join(failures)))
    return failures


def describe_update(label: str, u: dict[str, Any]) -> str:
    """The update's record in a few lines: time, where it went, what it touched, how it was checked."""
    stages = ", ".join(f"{k} {v['seconds']:.2f} s" for k, v in u["stages"].items())
    scratch = u["from_scratch"]
    others = ", ".join(scratch["other_files_differing"]) or "none"
    return (
        f"{label} (best round): {u['seconds']:.2f} s as a process, list +{u['list_lines_added']:,} lines; "
        f"stages {stages}; outside the stages (start-up, list import, release files) "
        f"{u['outside_stages_seconds']:.2f} s\n"
        f"  shards replaced {u['shards_replaced'] or 'none'}; other files replaced "
        f"{', '.join(u['other_files_replaced']) or 'none'}; manifest shard entries changed "
        f"{u['manifest_shard_entries_changed'] or 'none'}; removed {u['rows_removed']}\n"
        f"  from scratch with the grown list ({scratch['seconds']:.2f} s, not timed): "
        f"{scratch['shards_compared'] - len(scratch['shards_differing'])} of {scratch['shards_compared']} "
        f"shards byte-identical; other files differing: {others}\n"
        f"  memory {_mem(u['memory'])}\n  command: {u['command']}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rows", type=int, default=5_000_000)
    p.add_argument("--shards", type=int, default=10)
    p.add_argument("--bank", type=int, default=1_000_000, help="bank size, planted digests included")
    p.add_argument("--planted", type=int, default=2_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3, help="rounds of the timed steps; the best counts")
    p.add_argument("--small-rows", type=int, default=1_000_000, help="rows of the second (a); 0 skips it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None, help="parent folder for generated data (/tmp)")
    p.add_argument("--keep", action="store_true", help="keep the generated data and outputs")
    p.add_argument("--results", type=Path, default=None, help="also write every figure as JSON here")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per step")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="seconds a step may wait for other processes to go quiet (0: never); once per step in all",
    )
    p.add_argument(
        "--layouts",
        type=lambda text: tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip())),
        default=LAYOUTS,
        help="where the planted hits lie: every (spread over every shard), one (all in the first shard)",
    )
    p.add_argument(
        "--curve",
        type=Path,
        default=None,
        help="results JSON of bench_curve.py: its 20M-row update/first-run ratio is judged here too",
    )
    p.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.step:
        if args.workdir is None:
            p.error("--step needs --workdir")
        run_step_here(args.step, args.workdir)
        return 0
    if not 0 < args.planted <= min(args.bank, args.rows) or args.repeat < 1 or args.shards < 1:
        p.error("need 0 < --planted <= --bank and --rows, --repeat >= 1 and --shards >= 1")
    if args.small_rows and args.small_rows < args.planted:
        p.error("--small-rows must be at least --planted (or 0)")
    if not args.layouts or set(args.layouts) - set(LAYOUTS):
        p.error(f"--layouts takes a comma-separated choice of {', '.join(LAYOUTS)}")

    parent = args.workdir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="expunge-bench-", dir=parent))  # only this folder is removed
    shown = argv if argv is not None else sys.argv[1:]
    meta = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "versions": _versions(),
        "expunge_source": _expunge_source(),
        "command": " ".join(["python", "benchmarks/bench_urls.py", *shown]),
        "workdir": str(work),
        "repeat": args.repeat,
    }
    results: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    try:
        plan = prepare(work, args)
        steps = [s for layout in LAYOUTS if layout in args.layouts for s in LAYOUT_STEPS[layout]]
        steps += ["a_small"] if "small" in plan["datasets"] else []
        rounds: dict[str, list[dict[str, Any]]] = {s: [] for s in (*steps, *ONCE_STEPS)}
        gate = QuietGate(args.quiet_wait, budget=(len(steps) + len(ONCE_STEPS)) * args.quiet_wait)
        for name in ONCE_STEPS:
            _log(f"step {name} ...")
            gate.wait()
            rounds[name].append(run_step(work, name, args.timeout))
        for i in range(args.repeat):
            _log(f"round {i + 1} of {args.repeat} ...")
            for name in steps:
                gate.wait()
                rounds[name].append(run_step(work, name, args.timeout))
        meta["quiet_wait_seconds"] = gate.waited
        results = {name: combine(runs) for name, runs in rounds.items()}
        curve = json.loads(args.curve.read_text()) if args.curve else None
        failures = print_report(meta, plan, results, curve)
        if args.results:
            rows, _ = evaluate(plan, results, curve)
            report = {"meta": meta, "plan": plan, "figures": rows, "steps": results, "failures": failures}
            args.results.write_text(json.dumps(report, indent=2, default=str))
    finally:
        if args.keep:
            _log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
