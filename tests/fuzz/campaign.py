"""A fuzzing campaign over the libFuzzer targets built in build-fuzz/ (run by ./scripts/fuzz).

For each target, in turn: runs it with -jobs/-workers (the jobs share what they find), from
tests/fuzz/corpus/<target> and regressions/<target>, with its dictionary; then minimizes
(-merge=1) the corpus and everything found into a fresh set, which replaces the SHA-1-named
inputs in tests/fuzz/corpus/<target> (the hand-written, named seeds from seeds.py stay); copies
every crash, leak, timeout or out-of-memory input into tests/fuzz/regressions/<target>/ (ctest
replays that folder on every run); and prints total executions, the coverage of the corpus as
libFuzzer counts it (cov: edges, ft: features, from its stats line over the new corpus) and the
corpus size. Exits 1 naming the inputs when any target failed.

Scratch state lives in build-fuzz/campaign/<target>/ (the jobs' logs: fuzz-<n>.log).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FUZZ = REPO / "tests" / "fuzz"
BUILD = REPO / "build-fuzz" / "tests" / "fuzz"
CAMPAIGN = REPO / "build-fuzz" / "campaign"
# What libFuzzer writes for a failing input (-artifact_prefix); slow-unit-* is only a report.
FAILURES = ("crash-", "leak-", "timeout-", "oom-")
SHA1 = re.compile(r"^[0-9a-f]{40}$")
# Each input gets this long before it counts as a hang; memory as fuzz/CMakeLists.txt allows.
LIMITS = ["-timeout=25", "-rss_limit_mb=1024"]


def targets():
    return sorted(p.stem for p in FUZZ.glob("*_fuzz.cpp"))


def options():
    parser = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__.split("\n")[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, default=10, help="per target (default 10)")
    length.add_argument("--seconds", type=int, help="per target, instead of --minutes")
    parser.add_argument("--target", action="append", choices=targets(), metavar="NAME",
                        help="run only this target (repeatable); default: all of " +
                             ", ".join(targets()))
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="parallel fuzzing processes per target (default: 2, or 1 core)")
    args = parser.parse_args()
    args.seconds = args.seconds if args.seconds is not None else max(1, round(args.minutes * 60))
    return args


def stats_line(text):
    """cov, ft and corp of the last libFuzzer stats line in `text` (None when there is none)."""
    found = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)", text)
    return tuple(int(x) for x in found[-1]) if found else None


def run_jobs(binary, work, seconds, jobs, extra_dirs):
    """Fuzzes for `seconds` with `jobs` processes; returns (executions, best job stats)."""
    scratch = work / "scratch"
    scratch.mkdir()
    dict_file = FUZZ / "dict" / f"{binary.name}.dict"
    command = [str(binary), f"-jobs={jobs}", f"-workers={jobs}", f"-max_total_time={seconds}",
               "-print_final_stats=1", f"-artifact_prefix={work}/artifacts/", *LIMITS]
    if dict_file.exists():
        command.append(f"-dict={dict_file}")
    command += [str(scratch), *map(str, extra_dirs)]
    (work / "artifacts").mkdir()
    with open(work / "jobs.log", "wb") as log:
        subprocess.run(command, cwd=work, stdout=log, stderr=subprocess.STDOUT, check=False)
    executions, best = 0, None
    for job_log in sorted(work.glob("fuzz-*.log")):
        text = job_log.read_text(errors="replace")
        runs = re.findall(r"stat::number_of_executed_units: (\d+)", text)
        if runs:
            executions += int(runs[-1])
        else:  # a job that died: its last progress line says how far it got
            progress = re.findall(r"^#(\d+)\s", text, re.MULTILINE)
            executions += int(progress[-1]) if progress else 0
        job = stats_line(text)
        if job and (best is None or job[1] > best[1]):
            best = job
    return executions, best


def merge(binary, work, corpus):
    """Minimizes corpus + what the jobs found into a fresh set; SHA-1-named inputs in the
    corpus are replaced by it, named seeds stay. Returns the corpus file count before/after."""
    before = len(list(corpus.iterdir()))
    fresh = work / "merged"
    fresh.mkdir()
    with open(work / "merge.log", "wb") as log:
        merged = subprocess.run([str(binary), "-merge=1", *LIMITS, str(fresh), str(corpus),
                                 str(work / "scratch")], cwd=work, stdout=log,
                                stderr=subprocess.STDOUT, check=False)
    if merged.returncode != 0:  # the corpus is left as it was
        print(f"merge failed ({work / 'merge.log'}); corpus unchanged", flush=True)
        return before, before
    for old in corpus.iterdir():
        if SHA1.match(old.name) and not (fresh / old.name).exists():
            old.unlink()
    for new in fresh.iterdir():
        if SHA1.match(new.name) and not (corpus / new.name).exists():
            shutil.copyfile(new, corpus / new.name)
    return before, len(list(corpus.iterdir()))


def corpus_coverage(binary, work, corpus):
    """libFuzzer's own stats line after reading the corpus once: (cov, ft, files)."""
    done = subprocess.run([str(binary), "-runs=0", *LIMITS, str(corpus)], cwd=work,
                          capture_output=True, text=True, errors="replace", check=False)
    return stats_line(done.stderr)


def campaign(target, seconds, jobs):
    binary = BUILD / target
    work = CAMPAIGN / target
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    corpus = FUZZ / "corpus" / target
    corpus.mkdir(parents=True, exist_ok=True)
    regressions = FUZZ / "regressions" / target
    extra = [corpus] + ([regressions] if regressions.is_dir() else [])
    print(f"== {target}: {jobs} job(s) for {seconds} s", flush=True)
    executions, job = run_jobs(binary, work, seconds, jobs, extra)

    failures = [p for p in sorted((work / "artifacts").iterdir()) if p.name.startswith(FAILURES)]
    kept = []
    for failure in failures:
        regressions.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(failure, regressions / failure.name)
        kept.append(regressions / failure.name)

    if kept:  # a failing target would lose inputs in the merge: the corpus waits for the fix
        before = after = len(list(corpus.iterdir()))
        coverage = None
    else:
        before, after = merge(binary, work, corpus)
        coverage = corpus_coverage(binary, work, corpus)
    cov, ft = (coverage[0], coverage[1]) if coverage else ("?", "?")
    job_text = f"best job cov: {job[0]} ft: {job[1]}" if job else "no job stats"
    print(f"{target}: executions {executions} ({executions // max(seconds, 1)}/s), corpus cov: "
          f"{cov} ft: {ft}, corpus {before} -> {after} files ({job_text})", flush=True)
    for path in kept:
        print(f"{target}: FAILED, input kept as {path.relative_to(REPO)} "
              f"(logs: {work.relative_to(REPO)}/fuzz-*.log)", flush=True)
    return executions, cov, ft, after, kept


def main():
    args = options()
    chosen = args.target or targets()
    missing = [t for t in chosen if not (BUILD / t).exists()]
    if missing:
        sys.exit(f"not built: {', '.join(missing)} (./scripts/fuzz builds them)")
    rows, failed = [], []
    for target in chosen:
        executions, cov, ft, files, kept = campaign(target, args.seconds, args.jobs)
        rows.append((target, executions, cov, ft, files))
        failed += kept
    print(f"\n{'target':<20} {'executions':>12} {'cov':>6} {'ft':>7} {'corpus':>7}")
    for target, executions, cov, ft, files in rows:
        print(f"{target:<20} {executions:>12} {cov:>6} {ft:>7} {files:>7}")
    if failed:
        print("\nFAILED: " + ", ".join(str(p.relative_to(REPO)) for p in failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
