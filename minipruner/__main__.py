"""Command line: ``python -m minipruner reproduce CHAPTER --scale quick|full``.

Subcommands:

- ``list``: the chapters and how many results each has stored at each scale; ``--names``
  (one a line) or ``--json`` the names alone, :data:`minipruner.book.chapters.CHAPTERS` in order
  (the Makefile and the GPU workflow loop over them); ``--with-explorer`` only those with an
  explorer;
- ``reproduce CHAPTER``: run the chapter's missing configurations (resumable), then save its
  figures and table under ``results/<chapter>/<scale>/``; with ``--ray [ADDRESS]`` the
  configurations run as tasks on a Ray cluster (:mod:`minipruner.experiments.cluster`);
- ``table CHAPTER``: print the chapter's results table from stored results (computes nothing);
  ``table all`` prints every chapter's, each under a heading naming its scale, with its
  claims table below it;
- ``claims [CHAPTER]``: print the chapter's claims (statement, effect over seeds, verdict,
  calibrated power) from stored results and store them beside them (computes nothing);
  without a chapter, every chapter's, then the book-level chance that a fresh seed set passes
  every asserted claim. Exits 1 when an asserted claim did not hold;
- ``calibrate [CHAPTER] --offsets 0 100 ...``: run the chapter's quick scale at each seed
  offset (resumable) and write the calibration that decides which of its claims are asserted
  (:mod:`minipruner.book.calibration`); without a chapter, every chapter's.

``reproduce``, ``table`` and ``claims`` take ``--seed-offset K`` (default:
``$MINIPRUNER_SEED_OFFSET``, else 0, as in the notebooks) and, for one chapter, ``--set
key=value`` (repeatable) over the chapter's settings: a dotted key for a nested setting, the
value read as JSON where it parses and checked against the type of the value it replaces
(:mod:`minipruner.experiments.overrides`). Other settings are other results: they are stored apart.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from types import ModuleType
from typing import Any

from .book import calibration
from .book.chapters import CHAPTERS, chapter_explorer, chapter_module, chapter_name
from .book.claims import Claim, claims_table, find_claim, power_text
from .book.runner import (
    calibrate,
    chapter_claims,
    reproduce,
    save_claims,
    save_outputs,
    settings_at,
)
from .core.scale import SCALES, get_scale
from .experiments.overrides import apply_overrides
from .experiments.records import Results, results_dir
from .experiments.tables import markdown_table


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run one subcommand; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m minipruner", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list the chapters and their stored results")
    p.add_argument(
        "--names",
        action="store_true",
        help="the chapter names alone, one a line (what the Makefile and workflows loop over)",
    )
    p.add_argument("--json", action="store_true", help="the chapter names as a JSON list")
    p.add_argument(
        "--with-explorer",
        action="store_true",
        help="only the chapters that have an explorer (EXPLORER in the chapter's module)",
    )
    for command, text in (
        ("reproduce", "run a chapter's experiments (resumable) and save figures and table"),
        ("table", "print a chapter's results table from stored results"),
        ("claims", "print a chapter's claims and verdicts from stored results"),
    ):
        p = sub.add_parser(command, help=text)
        p.add_argument(
            "chapter",
            nargs="?" if command == "claims" else None,
            default="all" if command == "claims" else None,
            help="number or name, e.g. 1, 01_magnitude or magnitude"
            + (" (default: all)" if command == "claims" else ""),
        )
        p.add_argument("--scale", choices=SCALES, default=None, help="default: $MINIPRUNER_SCALE")
        p.add_argument("--results", default=None, help="results folder (default: ./results)")
        p.add_argument(
            "--seed-offset",
            type=int,
            default=None,
            metavar="K",
            help="add K to every seed (default: $MINIPRUNER_SEED_OFFSET, else 0)",
        )
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override one of the chapter's settings (repeatable; dotted keys for nested "
            "settings, e.g. train.epochs=3; the value as JSON, of the default's type)",
        )
        if command == "claims":
            p.add_argument(
                "--summary",
                action="store_true",
                help="one short table: per chapter its claims held and asserted, and its "
                "headline claims with verdict and power (the README's table)",
            )
        if command == "reproduce":
            p.add_argument("--quiet", action="store_true", help="no progress bars")
            p.add_argument(
                "--threads",
                type=int,
                default=1,
                help="torch CPU threads (default 1, as in the notebooks: CPU results are "
                "reproducible bit for bit only at the same thread count)",
            )
            p.add_argument(
                "--workers",
                type=int,
                default=1,
                help="run the configurations in this many processes side by side on this "
                "machine, each with --threads threads (default 1: in this process; 0: one per "
                "usable core); the results are the same, the wall time about 1/workers",
            )
            p.add_argument(
                "--ray",
                nargs="?",
                const="local",
                default=None,
                metavar="ADDRESS",
                help="run the missing configurations as tasks on a Ray cluster: a new local one "
                "without ADDRESS, else the cluster at ADDRESS ('auto' or host:port); needs "
                "pip install -e '.[cluster]'",
            )
            p.add_argument(
                "--gpus-per-task",
                type=float,
                default=None,
                help="with --ray: GPUs each task reserves (default 1 where the cluster has "
                "GPUs, else 0; 0.5 runs two tasks per GPU)",
            )
    p = sub.add_parser(
        "calibrate", help="run a chapter at many seed offsets; write its calibration"
    )
    p.add_argument("chapter", nargs="?", default="all", help="number or name (default: all)")
    p.add_argument(
        "--offsets",
        type=int,
        nargs="+",
        default=list(range(0, 1000, 100)),
        help=f"seed offsets, at least {calibration.MIN_OFFSETS} (default 0 100 ... 900)",
    )
    p.add_argument(
        "--threads",
        nargs="*",
        default=["500:2"],
        metavar="OFFSET:THREADS",
        help="torch threads of an offset's run (default: 500:2, every other offset 1)",
    )
    p.add_argument("--results", default=None, help="results folder (default: ./results)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes running each offset's configurations side by side (as reproduce "
        "--workers; 0: one per usable core)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="calibrate the chapter under changed settings (as reproduce --set; one chapter, "
        "needs --variant): a variant a page may cite, which asserts nothing",
    )
    p.add_argument("--variant", default=None, help="the variant's name (with --set)")
    args = parser.parse_args(argv)

    if args.command == "calibrate":
        try:
            threads = {int(k): int(t) for k, t in (item.split(":") for item in args.threads)}
            names = list(CHAPTERS) if args.chapter == "all" else [chapter_name(args.chapter)]
            if args.overrides and len(names) != 1:
                raise ValueError("--set needs one chapter")
            for name in names:
                path = calibrate(
                    name,
                    args.offsets,
                    threads=threads,
                    workers=args.workers or None,
                    root=args.results,
                    overrides=args.overrides,
                    variant=args.variant,
                )
                if args.variant:
                    print(f"wrote {path} (a variant: it asserts nothing)")
                    continue
                _, asserted = calibration.book_probability([name])
                total = len(calibration.load(name)["claims"])
                print(f"wrote {path}: {asserted} of {total} claims asserted")
        except ValueError as err:
            parser.error(str(err))
        return 0
    if args.command == "list":
        names = [n for n in CHAPTERS if not args.with_explorer or chapter_explorer(n) is not None]
        if args.json:
            print(json.dumps(names))
            return 0
        if args.names:
            print("\n".join(names))
            return 0
        root = results_dir()
        for name in names:
            stored = {s: len(list((root / name / s).glob("*.json"))) for s in SCALES}
            counts = ", ".join(f"{s}: {n} results" for s, n in stored.items())
            print(f"{name:18s} {counts}")
        return 0
    if args.seed_offset is not None and args.seed_offset < 0:
        parser.error(f"--seed-offset must be a non-negative integer, got {args.seed_offset}")
    if args.chapter == "all" and args.set:
        parser.error("--set needs one chapter (each chapter has its own settings)")
    if args.command == "table" and args.chapter == "all":
        return _all_tables(args.scale, args.results, args.seed_offset)
    try:
        all_chapters = args.command == "claims" and args.chapter == "all"
        name = None if all_chapters else chapter_name(args.chapter)
        inputs = _inputs(name, args.scale, args.seed_offset, args.set)
    except ValueError as err:
        parser.error(str(err))
    if args.command == "claims":
        names = list(CHAPTERS) if name is None else [name]
        return _claims(names, args.scale, args.results, args.summary, inputs)
    if args.command == "reproduce":
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        if args.workers < 0:
            parser.error("--workers must be 0 (one per core) or more")
        if args.workers > 1 and args.ray is not None:
            parser.error("--workers is for this machine; with --ray the cluster schedules tasks")
        if args.ray is not None:
            try:
                import ray  # noqa: F401
            except ImportError:
                parser.error("--ray needs Ray: pip install -e '.[cluster]'")
        results = reproduce(
            name,
            args.scale,
            root=args.results,
            **inputs,
            quiet=args.quiet,
            threads=args.threads,
            workers=args.workers or None,
            executor="serial" if args.ray is None else "ray",
            address=None if args.ray in (None, "local") else args.ray,
            gpus_per_task=args.gpus_per_task,
        )
        print(results)
        written = save_outputs(results)
        for path in written:
            print("wrote", path)
        for path in written:  # the claims table save_outputs stored, if the chapter has one
            if path.name.startswith("claims") and path.suffix == ".md":
                print(path.read_text())
        return 0
    try:
        results = reproduce(name, args.scale, root=args.results, compute=False, **inputs)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 1
    print(chapter_module(name).table(results))
    return 0


def _inputs(
    name: str | None, scale: str | None, seed_offset: int | None, assignments: list[str]
) -> dict[str, Any]:
    """The keyword arguments of :func:`minipruner.book.runner.reproduce` that pick the settings:
    ``seed_offset`` alone, or with ``--set`` assignments the chapter's settings at that
    offset with them applied (:func:`minipruner.experiments.overrides.apply_overrides`)."""
    if not assignments:
        return {"seed_offset": seed_offset}
    assert name is not None  # main refuses --set without one chapter
    return {
        "settings": apply_overrides(settings_at(name, get_scale(scale), seed_offset), assignments)
    }


CLAIMS_NOTE = (
    "effect: mean ± sample sd over seeds of the paired difference; verdict from the one-sided "
    "95 % Student-t bound; asserted when the calibrated chance that a fresh seed set confirms "
    f"the claim is at least {calibration.POWER_TO_ASSERT}"
)


def _heading(results: Results, module: ModuleType) -> None:
    offset = results.settings.get("seed_offset", 0)
    print(f"### {results.chapter}: {module.TITLE}\n")
    print(f"Scale `{results.scale}`, seed offset {offset}, {len(results)} configurations.\n")


RESULTS_PAGE = """# Results at the {scale} scale

Written by `python -m minipruner table all --scale {scale} > RESULTS.md` from the stored results
of `python -m minipruner reproduce N` for each chapter. Each chapter's table, then its claims:
the effect over seeds, the interval the verdict reads, the verdict, the chance that a fresh seed
set confirms the claim (its power, from the chapter's committed calibration over many seed
offsets, `minipruner/book/chapters/calibration/`), and whether the page asserts it (power at least
{power}). {book}
"""


def _all_tables(scale: str | None, root: str | None, seed_offset: int | None = None) -> int:
    missing = []
    p, count = calibration.book_probability(list(CHAPTERS))
    book = (
        f"Book-level: {count} asserted claims; a fresh seed set passes all of them with "
        f"probability {p:.4f}."
    )
    print(RESULTS_PAGE.format(scale=get_scale(scale), power=calibration.POWER_TO_ASSERT, book=book))
    for name in CHAPTERS:
        try:
            results = reproduce(name, scale, root=root, compute=False, seed_offset=seed_offset)
        except FileNotFoundError:
            missing.append(name)
            continue
        module = chapter_module(name)
        _heading(results, module)
        print(module.table(results) + "\n")
        if hasattr(module, "claims"):
            print(f"**Claims** ({CLAIMS_NOTE})\n")
            print(claims_table(chapter_claims(results, module)) + "\n")
    if missing:
        print(f"no complete results for: {', '.join(missing)}", file=sys.stderr)
    return 1 if len(missing) == len(CHAPTERS) else 0


def _summary_row(results: Results, module: ModuleType, found: list[Claim]) -> list[str]:
    asserted = [c for c in found if c.asserted]
    powers = [c.power for c in asserted]
    chance = "n/a" if None in powers else f"{math.prod(powers):.4f}"  # None: hand-asserted
    headlines = []
    for words in getattr(module, "HEADLINES", ()):
        try:
            c = find_claim(found, *words)
        except KeyError:
            continue
        short = c.statement.split(" (effect")[0]  # the statement without its measurement note
        headlines.append(f"{short}: **{c.verdict}** (power {power_text(c)})")
    return [
        f"{results.chapter}",
        str(len(found)),
        str(sum(c.held for c in found)),
        str(len(asserted)),
        chance,
        "<br>".join(headlines),
    ]


def _claims(
    names: list[str],
    scale: str | None,
    root: str | None,
    summary: bool = False,
    inputs: dict[str, Any] | None = None,
) -> int:
    missing, failed, rows = [], [], []
    for name in names:
        module = chapter_module(name)
        if not hasattr(module, "claims"):
            print(f"{name} states no claims as data yet", file=sys.stderr)
            missing.append(name)
            continue
        try:
            results = reproduce(name, scale, root=root, compute=False, **(inputs or {}))
        except FileNotFoundError as err:
            missing.append(name)
            if len(names) == 1:
                print(err, file=sys.stderr)
            continue
        found = chapter_claims(results, module)
        save_claims(results, module, found)
        if summary:
            rows.append(_summary_row(results, module, found))
        else:
            _heading(results, module)
            print(claims_table(found) + "\n")
        failed += [f"{name}: {c.statement}" for c in found if c.asserted and not c.held]
    if rows:
        header = ["chapter", "claims", "held", "asserted", "all asserted pass", "headline claims"]
        print(markdown_table(header, rows) + "\n")
    if len(names) > 1:
        p, count = calibration.book_probability(names)
        print(
            f"Book-level: {count} asserted claims; the chance that a fresh seed set passes every "
            f"one of them is {p:.4f} (the product of their calibrated powers; must be at least "
            f"{calibration.BOOK_LEVEL})"
        )
    if missing:
        print(f"no complete results for: {', '.join(missing)}", file=sys.stderr)
    if failed:
        print("asserted claims that did not hold:\n  " + "\n  ".join(failed), file=sys.stderr)
    return 1 if failed or len(missing) == len(names) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. `python -m minipruner table all | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
