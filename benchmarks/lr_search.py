"""Does the lr search find the dense grid's best lr in fewer runs? Both on the same groups, then
both groups' picks trained again on fresh seeds.

(a) the dense grid, `docs/lr_dense_measured.yaml`: a quarter decade over 1e-5 … 10, one seed;
(b) the search, `docs/lr_search_measured.yaml`, from a deliberately poor start grid;
(c) each group's two picks, the dense grid's best lr and the search's, with `--seeds` fresh
    seeds (100, 101, …: neither method saw them), so that no pick is scored on the seeds that
    picked it. One seed's best lr is partly a pick of that seed's noise; (c) says what each
    pick is worth.

The goal, per group: the search's best lr within a quarter decade of the dense grid's, or on the
fresh seeds a score as good as the dense pick's or not different from it beyond seed noise
(Welch's t-test at α = 0.05), in at most half the dense grid's runs. The table is markdown, for
docs/suites.md; every run's results stay under `--out` (dense/, search/, fresh/), so a second call
trains nothing and prints the same table.

    python benchmarks/lr_search.py --set 'matrix.model=[mlp]'       # 3 groups, ~1 min, 2 cores
    python benchmarks/lr_search.py --set dataset.subset=1000        # keras_cnn too (slower)
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from cnnbench.analysis import best_lr
from cnnbench.analysis.comparison import beyond_noise
from cnnbench.execute.progress import PlainReporter
from cnnbench.execute.rounds import run_rounds
from cnnbench.execute.runner import run_suite
from cnnbench.results.loading import load_results
from cnnbench.suite import load_suite, matrix_combos
from cnnbench.suite.expand import make_spec

ROOT = Path(__file__).resolve().parents[1]
QUARTER_DECADE = 0.25
FIRST_FRESH_SEED = 100  # far above the seeds the search confirms with (0, 1, 2, …)


def _fresh_specs(suite, picks: dict[tuple[str, str], set[float]], seeds: int) -> list:
    """Each group's picked lrs with the fresh seeds, as runs of the dense suite."""
    specs, seen = [], set()
    for combo in matrix_combos(suite)[0]:
        key = (combo["model"], combo["optimizer"])
        if key in picks and key not in seen:
            seen.add(key)
            specs += [make_spec(suite, combo, lr, seed) for lr in sorted(picks[key])
                      for seed in range(FIRST_FRESH_SEED, FIRST_FRESH_SEED + seeds)]
    return specs


def _mean_std(values: list[float]) -> str:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.3f} ± {std:.3f}"


def _verdict(apart: float, dense: list[float], search: list[float]) -> str:
    if apart <= QUARTER_DECADE:
        return "within ¼ decade"
    if sum(search) / len(search) >= sum(dense) / len(dense):
        return "as good on fresh seeds"
    return "missed" if beyond_noise(dense, search) else "within seed noise"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dense", type=Path, default=ROOT / "docs" / "lr_dense_measured.yaml")
    parser.add_argument("--search", type=Path, default=ROOT / "docs" / "lr_search_measured.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="an override for both suites, as `cnnbench run --set`")
    parser.add_argument("--seeds", type=int, default=5, help="fresh seeds per pick (≥ 2)")
    parser.add_argument("--out", type=Path, default=Path("results") / "lr-search-benchmark")
    args = parser.parse_args()
    dense = load_suite(args.dense, args.overrides)
    search = load_suite(args.search, args.overrides)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "log.txt", "a") as log:  # a line per run and epoch: not on screen
        reporter = PlainReporter(log)
        started = time.perf_counter()
        run_suite(dense, args.out / "dense", reporter=reporter)
        dense_s = time.perf_counter() - started
        run_rounds(search, args.out / "search", reporter=reporter)
        search_s = time.perf_counter() - started - dense_s
        dense_best = best_lr(load_results(args.out / "dense")[0]).set_index(
            ["model", "optimizer"])
        search_best = best_lr(load_results(args.out / "search")[0]).set_index(
            ["model", "optimizer"])
        picks = {key: {dense_best.at[key, "best_lr"], search_best.at[key, "best_lr"]}
                 for key in dense_best.index if key in search_best.index}
        run_suite(dense, args.out / "fresh", specs=_fresh_specs(dense, picks, args.seeds),
                  reporter=reporter)
    fresh = load_results(args.out / "fresh")[0]
    print(f"trained: dense grid {dense_s:.0f} s, search {search_s:.0f} s (results in {args.out});"
          f" fresh seeds {FIRST_FRESH_SEED}…{FIRST_FRESH_SEED + args.seeds - 1}\n")
    print("| group | dense: best lr | val_acc | runs | search: best lr | val_acc (seeds) | runs "
          "| apart | fresh seeds: dense pick | search pick | verdict |")
    print("|---" * 11 + "|")
    dense_runs = search_runs = 0
    for key in picks:
        d, s = dense_best.loc[key], search_best.loc[key]
        at = {lr: fresh[(fresh["model"] == key[0]) & (fresh["optimizer"] == key[1])
                        & (fresh["lr"] == lr)]["val_acc"].tolist()
              for lr in (d["best_lr"], s["best_lr"])}
        apart = abs(math.log10(s["best_lr"] / d["best_lr"]))
        dense_runs, search_runs = dense_runs + d["runs"], search_runs + s["runs"]
        print(f"| {key[0]} / {key[1]} | {d['best_lr']:.3g} | {d['val_acc']:.3f} | {d['runs']} "
              f"| {s['best_lr']:.3g} | {s['val_acc']:.3f} ({s['seeds']}) | {s['runs']} "
              f"| {apart:.2f} dec | {_mean_std(at[d['best_lr']])} | {_mean_std(at[s['best_lr']])} "
              f"| {_verdict(apart, at[d['best_lr']], at[s['best_lr']])} |")
    print(f"\nruns: search {search_runs} against the dense grid's {dense_runs} "
          f"({search_runs / dense_runs:.0%}; the goal: at most half)")


if __name__ == "__main__":
    main()
