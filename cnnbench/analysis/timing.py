"""Whether a report's speed figures can be trusted: runs that shared the machine while they
trained (their `timing` column, train/machine.py), and one network's speed spread across a
suite beyond what the optimizer can explain, which a busy machine leaves even where the probes
saw nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

# s/epoch of one network, on one dataset, batch size, precision and device, may differ between
# optimizers by their update's cost: a few percent for these networks. A spread beyond this
# factor is the machine's, not the optimizers'.
SPREAD_FACTOR = 2.0
SPREAD_FLOOR_S = 0.05  # epochs shorter than this are mostly fixed costs: their spread says little
SAME_WORK = ("model", "model_kwargs", "dataset", "batch_size", "precision", "device")


@dataclass(frozen=True)
class Spread:
    """s/epoch of one network's ok runs, from `low` to `high`."""

    model: str
    low: float
    high: float
    runs: int

    @property
    def ratio(self) -> float:
        return self.high / self.low


@dataclass(frozen=True)
class Timing:
    """What the speed figures of a set of runs rest on."""

    known: bool  # the runs carry the `timing` column (folders before it do not)
    runs: int
    contended: list[str] = field(default_factory=list)  # their run_ids
    reasons: list[str] = field(default_factory=list)
    spreads: list[Spread] = field(default_factory=list)

    @property
    def trustworthy(self) -> bool:
        return self.known and not self.contended and not self.spreads


def timing(runs: pd.DataFrame, factor: float = SPREAD_FACTOR) -> Timing:
    """The contended runs of `runs` and the networks whose s/epoch spreads beyond `factor`."""
    known = "timing" in runs and runs["timing"].notna().any()
    contended = runs[runs["timing"] == "contended"] if known else runs.iloc[:0]
    reasons = (sorted(set(contended["timing_reason"].dropna()) - {""})
               if "timing_reason" in contended else [])
    return Timing(known, len(runs), contended["run_id"].tolist(), reasons,
                  speed_spreads(runs, factor))


def speed_spreads(runs: pd.DataFrame, factor: float = SPREAD_FACTOR) -> list[Spread]:
    """Per network doing the same work (model and options, dataset, batch, precision, device),
    its ok runs' s/epoch when the slowest took over `factor` × the fastest."""
    if runs.empty or "s_per_epoch" not in runs:
        return []
    ok = runs[(runs["status"] == "ok") & runs["s_per_epoch"].notna()]
    keys = [k for k in SAME_WORK if k in ok]
    out = []
    for _, group in ok.groupby([ok[k].astype(str) for k in keys], sort=True):
        seconds = group["s_per_epoch"].astype(float)
        if (len(seconds) > 1 and seconds.min() >= SPREAD_FLOOR_S
                and seconds.max() > factor * seconds.min()):
            out.append(Spread(str(group["model"].iloc[0]), float(seconds.min()),
                              float(seconds.max()), len(seconds)))
    return out


def contended_at_best(runs: pd.DataFrame, best: pd.DataFrame, keys: list[str]) -> pd.Series:
    """For each row of a best-lr table: whether a run at its best lr was contended (its s/epoch
    is their mean)."""
    if best.empty or "timing" not in runs:
        return pd.Series(False, index=best.index)
    marked = runs.loc[runs["timing"] == "contended", [*keys, "lr"]].astype({"lr": float})
    if marked.empty:
        return pd.Series(False, index=best.index)
    hits = {tuple(str(v) for v in row) for row in marked.itertuples(index=False)}
    return pd.Series([(*(str(row[k]) for k in keys), str(float(row["best_lr"]))) in hits
                      for row in best.to_dict("records")], index=best.index)
