"""Write docs/lecture.md from the results of `scripts/lecture.sh run`.

    python scripts/lecture_page.py RESULTS_DIR FIGURES_DIR > docs/lecture.md

Tables and figures come from cnnbench's own commands (`report`, `grad-norms`) and its Python API;
each claim's verdict is computed from the measured numbers by the rule stated beside it, so a
rebuild on other hardware states what that hardware measured.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

import cnnbench
from cnnbench.render.report import Report, markdown_table
from cnnbench.tools.gradients import depth_profile, depth_summary
from cnnbench.train.engine import loss_fn

ROOT = Path(__file__).resolve().parents[1]
# published parameter counts (ImageNet nets: 1000 classes, 3×224²; LeNet-5: 10 classes, 1×32²)
PUBLISHED_PARAMS = {"lenet5": 61_706, "alexnet": 61_100_840, "zfnet": 62_357_608,
                    "vgg16": 138_357_544, "resnet18": 11_689_512, "resnet34": 21_797_672,
                    "resnet50": 25_557_032}
CLASSICS = list(PUBLISHED_PARAMS)


def cnnbench_cli(*args: str) -> str:
    """Run a cnnbench command; its stdout (the figures it writes are named on stderr)."""
    done = subprocess.run([sys.executable, "-m", "cnnbench", *args], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
    if done.returncode != 0:
        raise SystemExit(f"cnnbench {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout.strip()


def duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def held(flag: bool) -> str:
    return "**held**" if flag else "**did not hold**"


def held_on(flags: dict[str, bool]) -> str:
    """The verdict of a claim tested on several models."""
    if all(flags.values()) or not any(flags.values()):
        return held(all(flags.values()))
    return (f"**held on {', '.join(m for m, f in flags.items() if f)}, not on "
            f"{', '.join(m for m, f in flags.items() if not f)}**")


class Page:
    def __init__(self, results: Path, figures: Path) -> None:
        self.results, self.figures = results, figures
        timings = pd.read_csv(results / "timings.tsv", sep="\t", names=["step", "s", "rc"])
        self.profile_s = timings[timings["step"].str.startswith("classics")].groupby("step")[
            "s"].max().sum()  # a resumed rebuild logs a step again, in seconds
        self.claims: list[tuple[str, str, str]] = []  # (claim, measured, verdict)
        self.sections: list[str] = []
        self.suite_s: dict[str, float] = {}

    def figure(self, name: str) -> str:
        return os.path.relpath(self.figures / name, ROOT / "docs")

    def load(self, suite: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """A suite's results; its time is the sum of its runs' wall seconds (resumes included)."""
        runs, history = cnnbench.load_results(self.results / suite)
        self.suite_s[suite] = runs["wall_s"].sum()
        return runs, history

    def took(self, suite: str) -> str:
        return duration(self.suite_s[suite])

    def report(self, suite: str, *extra: str) -> str:
        return cnnbench_cli("report", str(self.results / suite), "--format", "markdown",
                            "--plots", str(self.figures / suite), *extra)

    def add(self, claim: str, measured: str, verdict: str, section: str = "") -> None:
        self.claims.append((claim, measured, verdict))
        if section:
            self.sections.append(section)

    # ── 1. softmax + cross-entropy ────────────────────────────────────────────────────────────
    def softmax_ce(self) -> None:
        torch.manual_seed(0)
        logits = torch.randn(64, 10, dtype=torch.float64) * 3
        targets = torch.randint(0, 10, (64,))
        one_hot = F.one_hot(targets, 10).to(logits.dtype)
        written_out = -(one_hot * torch.log(torch.exp(logits) / torch.exp(logits).sum(1, True))
                        ).sum(1).mean()
        gap = abs(loss_fn(logits, targets).item() - written_out.item())
        big = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]])
        big_targets = torch.tensor([2, 0])
        naive = -torch.log(torch.exp(big) / torch.exp(big).sum(1, True))[[0, 1], big_targets]
        fused = loss_fn(big, big_targets).item()
        z = logits.clone().requires_grad_()
        loss_fn(z, targets, reduction="sum").backward()
        grad_gap = (z.grad - (torch.softmax(logits, 1) - one_hot)).abs().max().item()
        p = torch.tensor([[math.log(0.775), math.log(0.225)]], dtype=torch.float64)
        bits = loss_fn(p, torch.tensor([0])).item() / math.log(2)
        tests = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                                "tests/test_softmax_ce.py"], capture_output=True, text=True,
                               cwd=ROOT)
        summary = next((line.strip(" =") for line in reversed(tests.stdout.splitlines())
                        if " passed" in line or " failed" in line), "did not run")
        ok = (gap < 1e-12 and not torch.isfinite(naive).all() and math.isfinite(fused)
              and grad_gap < 1e-12 and round(bits, 4) == 0.3677 and tests.returncode == 0)
        measured = (f"|fused − written out| = {gap:.1e}; logits ±1e4: naive {naive.tolist()}, "
                    f"fused {fused:g}; max |∂L/∂z − (y − t)| = {grad_gap:.1e}; "
                    f"worked example {bits:.4f} bits")
        self.add("the loss is softmax + cross-entropy, fused and stable; ∂L/∂z = y − t", measured,
                 held(ok), f"""## 1. Softmax + cross-entropy (`softmax_ce`)

**Claim.** The loss is −Σ t·log softmax(z) in its fused form (log-sum-exp), which stays finite
where the written-out softmax overflows, and its gradient with respect to the logits is y − t.

**Measured** with `cnnbench.train.engine.loss_fn` (what every run trains on; `F.cross_entropy`), in
float64, and by the test file `tests/test_softmax_ce.py` ({summary}):

| check | value |
|---|---:|
| moderate logits (64 × 10, N(0, 3²)): \\|fused − written-out\\| | {gap:.1e} |
| logits ±1e4: written-out loss per sample | {', '.join(f'{v:g}' for v in naive.tolist())} |
| logits ±1e4: fused loss (mean) | {fused:g} |
| max \\|∂L/∂z − (softmax(z) − t)\\| (summed loss) | {grad_gap:.1e} |
| worked example: p = 0.775 for the true class, −log₂ p | {bits:.4f} |

**Verdict:** {held(ok)} — the written-out form gives inf/NaN at ±1e4, the fused one
{fused:g} (the log-sum-exp is the largest logit); the lecture's worked example is 0.3677 bits.
""")

    # ── 2. Keras dense net vs convnet ─────────────────────────────────────────────────────────
    def keras_mnist(self) -> None:
        runs, _ = self.load("keras_mnist")
        by_model = runs[runs["status"] == "ok"].groupby("model")
        acc, params = by_model["test_acc"].mean(), by_model["params"].first()
        epoch_s = by_model["s_per_epoch"].mean()
        ok = (acc["keras_cnn"] > acc["mlp"] and params["keras_cnn"] == 34_826
              and params["mlp"] == 101_770)
        measured = (f"convnet {100 * acc['keras_cnn']:.2f} % with {params['keras_cnn']:,} params "
                    f"vs dense {100 * acc['mlp']:.2f} % with {params['mlp']:,}; "
                    f"{epoch_s['keras_cnn'] / epoch_s['mlp']:.0f}× the seconds per epoch")
        table = self.report("keras_mnist")
        self.add("the Keras convnet beats the dense net with 3× fewer parameters", measured,
                 held(ok), f"""## 2. Dense net vs convnet on MNIST (`keras_mnist`)

**Claim.** The Keras MNIST convnet (34,826 parameters) is more accurate than the Keras dense net
(101,770 parameters), at a higher cost per epoch.

**Run:** `cnnbench run suites/lecture/keras_mnist.yaml` — Adam, lr 10⁻³, batch 128, 5 epochs, 3
seeds, on mnist-mini (8,000 real MNIST training images bundled with cnnbench, 1,000 held out for
validation; 2,000 test images). Took {self.took('keras_mnist')}.

{table}

![learning curves]({self.figure('keras_mnist/learning_curves.png')})

**Verdict:** {held(ok)} — {measured}. Parameters are counted from the built models.
""")

    # ── 3. gradient-descent regimes ───────────────────────────────────────────────────────────
    def gd_regimes(self) -> None:
        runs, history = self.load("gd_regimes")
        target = ("val_acc", 0.9)
        report = Report(runs, history, by=["model", "optimizer"], target=target)
        best = report.best.set_index("batch")
        per_epoch = best["val_acc"].idxmax()
        reached = best[best["target_reached"] > 0]
        per_second = reached["time_to_target_s"].idxmin() if not reached.empty else None
        ok = per_epoch == "1" and per_second in ("32", "128") and best.loc["full", "val_acc"] \
            == best["val_acc"].min()
        fmt = {b: f"{100 * best.loc[b, 'val_acc']:.1f} %" for b in best.index}
        ttt = {b: (f"{best.loc[b, 'time_to_target_s']:.2f} s" if best.loc[b, "target_reached"]
                   else "never") for b in best.index}
        measured = (f"After 10 epochs, val acc: batch 1 {fmt['1']}, 32 {fmt['32']}, 128 "
                    f"{fmt['128']}, full {fmt['full']}; seconds to 90 %: 1 {ttt['1']}, 32 "
                    f"{ttt['32']}, 128 {ttt['128']}, full {ttt['full']}")
        table = self.report("gd_regimes", "--target", "val_acc=0.9")
        self.add("per epoch pure SGD learns most, full batch least; on the clock mini-batches win",
                 measured, held(ok), f"""## 3. Full-batch GD vs SGD vs mini-batches (`gd_regimes`)

**Claim.** Full-batch gradient descent takes one exact step per epoch; pure SGD (batch 1) takes
many cheap, noisy ones and learns the most per epoch; mini-batches sit between and win on
wall-clock time.

**Run:** `cnnbench run suites/lecture/gd_regimes.yaml` — the dense net, plain SGD, batch `full`,
1, 32 and 128, each on a 7-point log grid of lr from 10⁻³ to 1, 10 epochs on a 2,000-image
subset of mnist-mini. Took {self.took('gd_regimes')}. Report with `--target val_acc=0.9`:

{table}

![learning curves vs epochs and seconds]({self.figure('gd_regimes/learning_curves.png')})
![lr sensitivity]({self.figure('gd_regimes/lr_sensitivity.png')})

**Verdict:** {held(ok)} (rule: batch 1 has the best validation accuracy after 10 epochs, full
batch the worst, and a mini-batch reaches 90 % first in seconds). Best per epoch: batch
{per_epoch}; first to 90 % on the clock: batch {per_second}. {measured}.
""")

    # ── 4. optimizers ─────────────────────────────────────────────────────────────────────────
    def optimizers(self) -> None:
        runs, history = self.load("optimizers")
        tolerance = 0.05  # at 1 point every optimizer had its best grid point alone
        best = Report(runs, history, tolerance=tolerance).best.set_index(["model", "optimizer"])
        models = sorted(best.index.get_level_values("model").unique())
        fast, slow = (best.loc[[(m, "momentum-0.9") for m in models]].droplevel("optimizer"),
                      best.loc[[(m, "momentum-0.99") for m in models]].droplevel("optimizer"))
        lr_drops = {m: bool(slow.loc[m, "best_lr"] < fast.loc[m, "best_lr"]
                            and not slow.loc[m, "on_edge"]) for m in models}
        adaptive = ["adagrad", "rmsprop", "adam", "adamw", "qhadam"]
        width = {m: (best.loc[[(m, o) for o in adaptive], "sensitivity_decades"].mean(),
                     best.loc[(m, "sgd"), "sensitivity_decades"]) for m in models}
        less_sensitive = held_on({m: bool(a > s) for m, (a, s) in width.items()})
        winners = {m: best.loc[m, "val_acc"].idxmax() for m in models}
        strict = Report(runs, history).best  # the report's default tolerance, 1 point
        alone = int((strict["sensitivity_decades"] <= 1.0 + 1e-9).sum())
        table = self.report("optimizers", "--tolerance", str(tolerance))
        lr_text = "; ".join(
            f"{m}: {fast.loc[m, 'best_lr']:.3g} → {slow.loc[m, 'best_lr']:.3g}"
            + (" (on the grid's edge)" if slow.loc[m, "on_edge"] else "") for m in models)
        width_text = "; ".join(f"{m}: adaptive {a:.2f} vs SGD {s:.2f} decades"
                               for m, (a, s) in width.items())
        self.add("momentum's best lr drops when β rises from 0.9 to 0.99",
                 f"best lr {lr_text}", held_on(lr_drops))
        self.add("adaptive methods are less sensitive to the lr than SGD",
                 f"lr range within 5 points of the best, {width_text}", less_sensitive)
        self.sections.append(f"""## 4. The optimizers (`optimizers`)

**Claims.** (a) With momentum the learning rate must drop as β rises (0.9 → 0.99). (b) Adaptive
methods (Adagrad, RMSprop, Adam, AdamW, QHAdam) are less sensitive to the learning rate than
plain SGD.

**Run:** `cnnbench run suites/lecture/optimizers.yaml` — SGD, momentum 0.9 and 0.99, Nesterov,
RMSprop (α = 0.9), Adam, AdamW, Adagrad, Adadelta, QHAdam and AggMo on the Keras convnet and
LeNet-5, 3 seeds, 3 epochs on a 1,000-image subset of mnist-mini (330 runs), test accuracy on a
fixed 1,000 of its 2,000 test images. Every grid has 5 points one decade apart: 10⁻⁴ … 1 for
SGD, both momenta (the same grid, so a lower best lr at β = 0.99 is measured, not built in),
Nesterov, Adagrad and AggMo; 10⁻⁵ … 0.1 for RMSprop and the Adam family; 10⁻³ … 10 for
Adadelta. Took {self.took('optimizers')}. The best lr has the best mean validation accuracy over
the seeds; "near best" is how many decades of the grid have a mean validation accuracy within
{100 * tolerance:.0f} points of the best (`cnnbench report --tolerance {tolerance}`; at the
default 1 point, {alone} of the {len(strict)} model × optimizer pairs have no grid point but the
best one near it, which cannot tell them apart).

{table}

![lr sensitivity]({self.figure('optimizers/lr_sensitivity.png')})
![performance profile]({self.figure('optimizers/performance_profile.png')})

**Verdicts.** (a) {held_on(lr_drops)} (rule: β = 0.99's best lr below β = 0.9's and
not on the grid's edge, on each model) — best lr, momentum 0.9 → 0.99: {lr_text}.
(b) {less_sensitive} (rule: the adaptive methods' mean near-best width exceeds SGD's on
each model) — {width_text}. Best optimizer by validation accuracy:
{'; '.join(f'{m}: {w}' for m, w in winners.items())}.
""")

    # ── 5. degradation ────────────────────────────────────────────────────────────────────────
    def degradation_table(self, suite: str) -> tuple[pd.Series, str]:
        runs, _ = self.load(suite)
        final = runs.set_index("model")
        models = ["plain20", "plain56", "resnet20", "resnet56"]
        rows = [[m, f"{final.loc[m, 'params']:,}", f"{final.loc[m, 'train_loss']:.3f}",
                 f"{100 * final.loc[m, 'train_acc']:.1f}", f"{100 * final.loc[m, 'test_acc']:.1f}",
                 duration(final.loc[m, "train_s"])] for m in models]
        self.report(suite, "--by", "model")
        return final["train_loss"], markdown_table(
            ["model", "params", "final train loss", "train acc %", "test acc %", "train time"],
            rows)

    def degradation(self) -> None:
        loss, table = self.degradation_table("degradation")
        ok = bool(loss["plain56"] > loss["plain20"] and loss["resnet56"] <= loss["resnet20"] * 1.02)
        order = ["plain20", "plain56", "resnet20", "resnet56"]
        measured = ", ".join(f"{m} {loss[m]:.3f}" for m in order)
        cold_loss, cold_table = self.degradation_table("degradation-no-warmup")
        plain_gap = loss["plain56"] - loss["plain20"]
        resnet_gap = loss["resnet56"] - loss["resnet20"]
        why = "" if ok else (
            f"Going from 20 to 56 layers costs the plain nets {plain_gap:+.3f} in training loss "
            f"and the ResNets {resnet_gap:+.3f}: "
            + ("the shortcuts shrink the degradation but, after 320 steps, do not remove it. He "
               "et al. compare after 64,000 steps, when the deeper ResNet has caught up; whether "
               "it does here too needs a longer run (`--set train.epochs=32`, about four times "
               "as long)." if 0 < resnet_gap < plain_gap else
               "at this scale the measurement does not show the paper's picture."))
        self.add("the 56-layer plain net trains worse than the 20-layer one; the ResNet does not",
                 f"final train loss {measured}", held(ok), f"""## 5. Degradation (`degradation`)

**Claim** (He et al. 2016, Fig. 1 and 6). Deeper is not better for plain nets: the 56-layer
plain net has a *higher training loss* than the 20-layer one (so it is not overfitting), while
the 56-layer ResNet trains at least as well as the 20-layer ResNet.

**Run:** `cnnbench run suites/lecture/degradation.yaml` on CIFAR-10 (from the JPEG image folder:
`--set dataset.name=imagefolder --set dataset.root=…`), sized for 2 CPU cores: a stratified
5,000 training images, 8 epochs of 40 steps, batch 128, SGD lr 0.1 with momentum 0.9 and weight
decay 10⁻⁴ (the paper's), a one-epoch linear warm-up then a cosine decay, no augmentation, test
accuracy on a fixed stratified 2,000 test images. Took {self.took('degradation')}. (The paper:
50,000 images with augmentation, 64,000 steps.)

{table}

![learning curves]({self.figure('degradation/learning_curves.png')})

**Verdict:** {held(ok)} (rule: plain56's final training loss above plain20's, and resnet56's at
most 2 % above resnet20's). Final training loss: {measured}. {why}

**Without the warm-up** (`--set 'train.schedule={{name: cosine}}'`, lr 0.1 from the first step;
took {self.took('degradation-no-warmup')}):

{cold_table}

![learning curves without warm-up]({self.figure('degradation-no-warmup/learning_curves.png')})

At lr 0.1 from the first step, both 56-layer nets ended far above the 20-layer ones (final
training loss {", ".join(f"{m} {cold_loss[m]:.3f}" for m in order)}). He et al. warm up
only their 110-layer nets, but they train for 64,000 steps; with 320 steps, a net that is thrown
off in its first steps has no time to recover, so this run cannot tell depth from instability.
The warm-up run above is the test of the claim.

**On one GPU** (`cnnbench run suites/lecture/degradation_gpu.yaml`): the same four nets and
optimizer on all 45,000 training images (5,000 held out for validation) for 20 epochs — 7,020
steps, 22 times the CPU run's 320, a ninth of the paper's 64,000 — each step captured as a CUDA
graph (`graphs: true`). It is the longer run the verdict above asks for: with the shortcuts the
56-layer net should now train at least as well as the 20-layer one while the plain 56-layer net
stays behind the plain 20-layer one. The goal is the four runs in ≤ 6 minutes on one H200;
`bash benchmarks/gpu_check.sh` runs it (step `showcase`: its minutes, the four final training
losses and whether the claim's rule holds). It has not been run yet: no GPU was at hand when it
was written, so no figure or verdict is given here until one is measured.
""")

    # ── 6. vanishing gradients ────────────────────────────────────────────────────────────────
    def vanishing(self) -> None:
        folder = self.results / "vanishing"
        runs, _ = self.load("vanishing")
        table = cnnbench_cli("grad-norms", str(folder), "--format", "markdown", "--plot",
                             str(self.figures / "vanishing"))
        summary = depth_summary(depth_profile(cnnbench.load_grad_norms(folder), runs)
                                ).set_index(["run", "epoch"])
        ratio = summary["first_over_last"]
        last = int(summary.index.get_level_values("epoch").max())
        step = summary.loc[("plain56", last), "step"]
        at_init = bool(ratio[("plain56", 0)] < ratio[("resnet56", 0)])
        at_end = bool(ratio[("plain56", last)] < ratio[("resnet56", last)])
        verdict = held(at_init and at_end) if at_init == at_end else (
            f"**held after {step} steps, not at initialisation**" if at_end else
            f"**held at initialisation, not after {step} steps**")

        def side(epoch: int) -> str:
            p_, r_ = ratio[("plain56", epoch)], ratio[("resnet56", epoch)]
            shape = "shrinks" if p_ < 1 else "grows"
            return (f"plain56's gradient {shape} towards the input (first/last layer "
                    f"{p_:.3g}), resnet56's first/last is {r_:.3g}")

        measured = f"at initialisation {side(0)}; after step {step} {side(last)}"
        self.add("gradients vanish towards the input of a deep plain net, not of a ResNet",
                 measured, verdict, f"""## 6. Vanishing gradients (`vanishing`)

**Claim.** Back-propagated through many layers the gradient shrinks like 0.9¹⁰⁰ ≈ 3·10⁻⁵: the
first layers of a deep plain net get far less gradient than the last ones, while ResNet's
identity shortcuts carry it back.

**Run:** `cnnbench run suites/lecture/vanishing.yaml` with the `grad_norms` probe — plain56 and
resnet56, 2,000 CIFAR-10 images, batch 32, SGD lr 0.1 (one-epoch warm-up, cosine) momentum 0.9,
4 epochs (252 steps); the norm of every weight tensor's gradient at the first step (epoch 0) and
at the last step of each epoch. Took {self.took('vanishing')}. `cnnbench grad-norms`:

{table}

![gradient norm against depth]({self.figure('vanishing/grad_norms.png')})

**Verdict:** {verdict} (rule: plain56's first/last ratio below resnet56's, at initialisation and
after the last epoch). At initialisation {side(0)}; after step {step} {side(last)}.

Both nets have batch normalisation after every convolution, which the 0.9¹⁰⁰ picture leaves
out. Where the plain net's gradient *grows* towards the input at initialisation, that is the
gradient explosion that batch normalisation causes in deep plain nets at initialisation (Yang
et al., "A Mean Field Theory of Batch Normalization", ICLR 2019): the plain net's trouble is real,
but its sign differs from the lecture's picture. Over all recorded steps resnet56's first/last
ratio stays between {ratio.loc["resnet56"].min():.3g} and {ratio.loc["resnet56"].max():.3g},
plain56's between {ratio.loc["plain56"].min():.3g} and {ratio.loc["plain56"].max():.3g}.
""")

    # ── 7. the classic nets ───────────────────────────────────────────────────────────────────
    def classics(self) -> None:
        rows, exact = [], True
        for model in CLASSICS:
            frame = pd.read_csv(self.results / "classics" / f"{model}.csv").set_index("phase")
            infer, train = frame.loc["inference"], frame.loc["train"]
            exact &= bool(train["params"] == PUBLISHED_PARAMS[model])
            rows.append([model, f"{train['params']:,}", f"{PUBLISHED_PARAMS[model]:,}",
                         train["input"],
                         f"{infer['flops_per_step'] / infer['batch_size'] / 1e9:.3g}",
                         f"{infer['samples_per_s']:.1f}", f"{train['samples_per_s']:.1f}",
                         f"{train['peak_rss_bytes'] / 2**30:.2f}"])
        took = duration(self.profile_s)
        flops = {r[0]: float(r[4]) for r in rows}
        chain = ["lenet5", "alexnet", "zfnet", "vgg16"]
        grows = all(flops[a] < flops[b] for a, b in zip(chain, chain[1:]))
        cheaper = all(flops[m] < flops["vgg16"] for m in ("resnet18", "resnet34", "resnet50"))
        ok = exact and grows and cheaper
        self.add("LeNet → AlexNet → ZFNet → VGG → ResNet: published sizes; cost grows to VGG, "
                 "ResNets are cheaper than VGG",
                 ("parameter counts equal the published ones" if exact else
                  "some parameter counts differ from the published ones")
                 + "; forward GFLOPs/image " + ", ".join(f"{m} {flops[m]:.3g}" for m in flops),
                 held(ok),
                 f"""## 7. The classic nets (`classics`)

**Claim.** The nets of the lecture, built by cnnbench, have the published sizes; their cost
grows from LeNet-5 to VGG-16, and ResNets are deeper yet cheaper than VGG.

**Run:** `cnnbench profile MODEL --input 3x224x224 --batch-sizes 8 --warmup 1 --repeats 3
--device cpu --out …` for each (LeNet-5 at its own 1×32×32 input, batch 64); FLOPs counted by
torch's FlopCounterMode (a multiply-add is 2 FLOPs), throughput from the timed steps, peak
memory as the process's resident high-water mark. Took {took}.

{markdown_table(["model", "params", "published", "input", "GFLOPs / image (forward)",
                 "inference img/s", "training img/s", "peak RSS GiB"], rows)}

**Verdict:** {held(ok)} (rule: every parameter count equals the published one, forward FLOPs
grow from LeNet-5 through AlexNet and ZFNet to VGG-16, and each ResNet needs fewer than VGG-16).
Published counts: LeNet-5 (LeCun et al. 1998, with full C3 connections), AlexNet, VGG-16 and the
ResNets as torchvision's reference models, ZFNet (Zeiler & Fergus 2014, single tower). He et al.
give 3.6 and 3.8 billion multiply-adds for ResNet-34 and -50 and 15.3 billion for VGG-16, i.e.
7.2, 7.6 and 30.7 GFLOPs: within 2 % of the counts above. Throughputs are CPU figures
(`--device cpu`).
""")

    # ── 8. data parallel ─────────────────────────────────────────────────────────────────────
    def data_parallel(self) -> None:
        one, _ = self.load("data_parallel")
        two, _ = self.load("data_parallel-2")
        one, two = one.set_index("model"), two.set_index("model")
        gaps = {m: abs(two.loc[m, "train_loss"] - one.loc[m, "train_loss"]) for m in one.index}
        rows = "\n".join(
            f"| {m} | {'yes' if m == 'resnet20' else 'no'} | {one.loc[m, 'train_loss']:.6f} | "
            f"{two.loc[m, 'train_loss']:.6f} | {gaps[m]:.1e} | {one.loc[m, 'test_acc']:.2%} | "
            f"{two.loc[m, 'test_acc']:.2%} |" for m in one.index)
        # float rounding: the all-reduce sums in another order than one process does
        same = gaps["lenet5"] < 1e-4
        ok = same and gaps["resnet20"] > 10 * max(gaps["lenet5"], 1e-7)
        measured = ("|Δ final train loss|, 1 vs 2 processes: lenet5 "
                    f"{gaps['lenet5']:.1e}, resnet20 (BatchNorm) {gaps['resnet20']:.1e}")
        self.add("split a mini-batch between machines, aggregate the gradients: the same step",
                 measured, held(ok), rf"""## 8. Split a batch, aggregate gradients (`data_parallel`)

**Claim.** Mini-batch gradients parallelise across machines: split a large mini-batch between
them and aggregate (average) the resulting gradients. The step is the one-machine step.

**Run:** `cnnbench run suites/lecture/data_parallel.yaml`, then the same with `--nproc 2`: each
run data-parallel over 2 processes (DistributedDataParallel, gloo), each training on 64 of every
128 images, gradients all-reduced ([One run on several GPUs](distributed.md)). Took
{self.took("data_parallel")} and {self.took("data_parallel-2")}.

| model | BatchNorm | train loss: 1 process | 2 processes | \|Δ\| | test acc: 1 | 2 |
|:---|:---|---:|---:|---:|---:|---:|
{rows}

**Verdict:** {held(ok)} (rule: without BatchNorm the final train losses agree within 1e-4, float
rounding of the all-reduce; with BatchNorm they differ ten times more). A BatchNorm layer
normalises each process's slice by that slice's own statistics (64 images, not 128), so its
gradient is not the one-process gradient; `train: {{distributed: {{sync_bn: true}}}}` (CUDA)
computes them over the whole batch.
""")

    def write(self, hardware: str) -> str:
        summary = "\n".join(["| # | claim | measured | verdict |", "|---:|:---|:---|:---|"] + [
            f"| {i} | {c} | {m.replace('|', chr(92) + '|')} | {v} |"
            for i, (c, m, v) in enumerate(self.claims, start=1)])
        total = duration(sum(self.suite_s.values()) + self.profile_s)
        return f"""# The lecture's claims, measured by cnnbench

Every table and figure on this page was produced by cnnbench from the suites in
`suites/lecture/`; `scripts/lecture.sh` rebuilds the page and its figures from scratch
(`rm -rf results/lecture && scripts/lecture.sh`). Each verdict is computed from the numbers by
the rule stated in its section, so a rebuild says what *its* hardware measured.

**Hardware:** {hardware}. All runs took {total} in all, one after another.

{summary}

{chr(10).join(s for s in self.sections if s)}"""


def main() -> None:
    results, figures = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    page = Page(results, figures)
    for section in (page.softmax_ce, page.keras_mnist, page.gd_regimes, page.optimizers,
                    page.degradation, page.vanishing, page.classics, page.data_parallel):
        section()
    hardware = "; ".join((results / "hardware.txt").read_text().strip().splitlines())
    text = page.write(hardware)
    for path in figures.rglob("*.*"):  # keep the figures the page shows
        if page.figure(str(path.relative_to(figures))) not in text:
            path.unlink()
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
