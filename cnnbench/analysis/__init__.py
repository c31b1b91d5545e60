"""Analysis: pure pandas over the `runs` and `history` tables — the lr protocol (what "best"
means), seeds, sensitivity, time-to-target, performance profiles and run-to-run comparison;
significance tests, paired comparisons, budget curves and P(best). Nothing here prints or
draws; `cnnbench.render` does."""

from cnnbench.analysis.bounds import divergence_bound  # noqa: F401
from cnnbench.analysis.budget import (  # noqa: F401
    budget_curves,
    crossings,
    expected_best,
    expected_max,
)
from cnnbench.analysis.comparison import MATCH_KEYS, beyond_noise, compare  # noqa: F401
from cnnbench.analysis.confidence import Confidence, conclusions, seed_notes  # noqa: F401
from cnnbench.analysis.paired import paired_comparisons, scores_at_best  # noqa: F401
from cnnbench.analysis.protocol import (  # noqa: F401
    AXES,
    BOOTSTRAP_RESAMPLES,
    DEFAULT_BY,
    SELECTABLE,
    best_lr,
    bootstrap_ci,
    bootstrap_cis,
    check_metric,
    group_keys,
    learning_curves,
    lower_is_better,
    lr_curve,
    lr_sensitivity,
    mean_rank,
    natural_order,
    numeric,
    peak_bytes,
    performance_profile,
    pick_best,
    problem_costs,
    problems,
    run_scores,
    test_metric,
    time_to_target,
    worst_value,
)
from cnnbench.analysis.ranking import p_best  # noqa: F401
from cnnbench.analysis.significance import (  # noqa: F401
    ALPHA,
    FACTOR,
    LEVEL,
    Significance,
    change,
    holm,
    paired_test,
    paired_tests,
    significant_diff,
    welch,
)
