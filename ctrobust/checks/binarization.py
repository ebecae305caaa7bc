"""The binarization test (Zimmermann, Brendel, Tramèr & Carlini, NeurIPS 2022), on each arm of a run.

For a sample point x, a two-class problem is built whose answer is known: the model's own features
(the input of its last linear layer, with CT applied at the arm's beta) feed a new linear readout
fitted to call x and random points within 0.95 eps of it class 0, and one planted point at exactly
eps class 1. The readout's boundary is then moved close to the planted point, so an adversarial
example within eps provably exists. The arm's attack is run on this binarized model at x: an attack
that works finds one. Over many samples, the success rate says whether the attack can find
adversarial examples on this model at this beta at all: a PASS is necessary, not sufficient, and
bounds nothing about the true robust accuracy.

Verdicts: PASS when the attack succeeds on at least 95% of the samples whose setup worked; FAIL when
the 95% Wilson upper bound of its success rate is below 95%; otherwise INCONCLUSIVE; also
INCONCLUSIVE when random points on the eps-sphere, with the attack's query budget, pass too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn as nn

from ctrobust.attacks.norms import NORM_BALLS
from ctrobust.attacks.runners import AttackFn, BinarizedAttack
from ctrobust.attacks.spec import AttackSpec
from ctrobust.attacks.verify import verify_adversarial
from ctrobust.outputs import plural
from ctrobust.results.evidence import ArmBinarization, ArmsCompared
from ctrobust.results.stats import mcnemar_exact, wilson_interval
from ctrobust.threats import ThreatModel

PASS_RATE = 0.95
INNER_RADIUS = 0.95  # inner points lie within this fraction of eps
CLOSENESS = 0.999  # how far the readout's boundary is moved towards the planted point
N_INNER = 199  # random inner points per sample, besides the point itself (fewer let random points pass under L2)
MIN_SAMPLES = 20  # fewer set-up samples: INCONCLUSIVE (the check budget grants at least this many)
FIT_ITERATIONS = 100


@dataclass
class Features:
    """Where the readout reads: the input of the model's last linear layer, or (fallback) the logits."""

    head: nn.Linear | None
    kind: str  # "penultimate" or "logits"
    reason: str = ""


def find_head(model: nn.Module, x: torch.Tensor) -> Features:
    """The last ``nn.Linear`` called in a probe forward pass whose output has the model's class count, when its
    output is the model's output; otherwise the readout reads the logits (the test stays valid: the readout is then
    the model's last step, and nothing the model does after its head is cut off)."""
    calls: list[tuple[nn.Linear, torch.Tensor]] = []
    handles = [m.register_forward_hook(lambda mod, _inp, out: calls.append((mod, out.detach())))
               for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            logits = model(x[:2])
    finally:
        for h in handles:
            h.remove()
    n_classes = logits.shape[-1]
    heads = [(mod, out) for mod, out in calls if out.shape[-1] == n_classes]
    if not heads:
        return Features(None, "logits", "no linear layer with one output per class: the readout reads the logits")
    head, out = heads[-1]
    if out.shape != logits.shape or out.dtype != logits.dtype or not torch.equal(out, logits):
        return Features(None, "logits", "the model computes on after its last linear layer (e.g. a temperature, an "
                        "offset, an average of heads, a log-softmax): the readout reads the logits")
    return Features(head, "penultimate")


@contextmanager
def _capture_head_input(head: nn.Linear, sink: list[torch.Tensor]) -> Iterator[None]:
    handle = head.register_forward_pre_hook(lambda _m, args: sink.append(args[0].detach().flatten(1)))
    try:
        yield
    finally:
        handle.remove()


def features(model: nn.Module, where: Features, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The readout's input for each image, in float64."""
    return features_and_logits(model, where, x, batch_size)[0]


def features_and_logits(model: nn.Module, where: Features, x: torch.Tensor, batch_size: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """The readout's input and the model's logits for each image, from one pass, in float64."""
    feats, logits = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            sink: list[torch.Tensor] = []
            if where.head is None:
                out = model(x[i : i + batch_size])
            else:
                with _capture_head_input(where.head, sink):
                    out = model(x[i : i + batch_size])
            logits.append(out.double())
            feats.append(sink[-1].double() if sink else out.double())
    return torch.cat(feats), torch.cat(logits)


class LayoutError(RuntimeError):
    """A batch that does not hold one image per readout (an attack that subsets its batch)."""


class BinarizedModel(nn.Module):
    """``model`` with its head replaced by one two-class readout per sample; row i of a batch uses readout
    ``rows[i]``, so a batch must hold exactly one image per row (the attack's own layout is checked)."""

    def __init__(self, model: nn.Module, where: Features, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.model, self.where = model, where
        self.register_buffer("weight", weight.float())
        self.register_buffer("bias", bias.float())
        self.rows: torch.Tensor = torch.arange(len(weight))

    @contextmanager
    def using_rows(self, rows: torch.Tensor) -> Iterator[None]:
        previous, self.rows = self.rows, rows
        try:
            yield
        finally:
            self.rows = previous

    def _readout(self, f: torch.Tensor) -> torch.Tensor:
        if len(f) != len(self.rows):
            raise LayoutError(f"binarized model: batch of {len(f)} for {len(self.rows)} readouts")
        rows = self.rows.to(f.device)
        weight, bias = cast(torch.Tensor, self.weight), cast(torch.Tensor, self.bias)
        s = (f.flatten(1) * weight[rows]).sum(1) + bias[rows]
        return torch.stack([-s / 2, s / 2], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.where.head is None:
            return self._readout(self.model(x))
        handle = self.where.head.register_forward_hook(lambda _m, args, _out: self._readout(args[0]))
        try:  # the head's output is replaced; whatever follows the head still runs
            return self.model(x)
        finally:
            handle.remove()


def boundary_point(x: torch.Tensor, threat: ThreatModel, eps: float, gen: torch.Generator) -> torch.Tensor:
    """A point at exactly eps from ``x`` inside [0, 1] (the norm ball's own construction)."""
    return NORM_BALLS[threat].boundary_point(x, eps, gen)


def inner_points(x: torch.Tensor, threat: ThreatModel, eps: float, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` random points within INNER_RADIUS * eps of ``x``, inside [0, 1] (clipping only moves them closer)."""
    delta = NORM_BALLS[threat].inner((n, *x.shape), gen) * (INNER_RADIUS * eps)
    return (x.unsqueeze(0) + delta.to(x)).clamp(0, 1)


def sphere_points(x: torch.Tensor, threat: ThreatModel, eps: float, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` random points at distance eps (before clipping to [0, 1]): the random baseline's queries."""
    delta = NORM_BALLS[threat].sphere((n, *x.shape), gen) * eps
    return (x.unsqueeze(0) + delta.to(x)).clamp(0, 1)


@dataclass
class Planted:
    """The samples and the planted points of the test: the same for both arms."""

    positions: list[int]  # positions in the evaluation split
    x: torch.Tensor  # the sample points
    inner: torch.Tensor  # (m, N_INNER, ...) random inner points
    boundary: torch.Tensor  # (m, ...) one planted point at eps per sample


def plant(x: torch.Tensor, positions: list[int], threat: ThreatModel, eps: float, seed: int,
          n_inner: int = N_INNER) -> Planted:
    gen = torch.Generator().manual_seed(seed)
    xs = x[positions].cpu().float()
    inner = torch.stack([inner_points(p, threat, eps, n_inner, gen) for p in xs])
    boundary = torch.stack([boundary_point(p, threat, eps, gen) for p in xs])
    return Planted(positions, xs, inner, boundary)


def fit_readout(f_inner: torch.Tensor, f_boundary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """An unregularised logistic readout in float64 that calls ``f_inner`` 0 and ``f_boundary`` 1, or None when it
    does not separate them perfectly. Classes are weighted equally (one point against many)."""
    mean = f_inner.mean(0)
    w0 = f_boundary - mean  # start at the perpendicular bisector of the two
    w = w0.clone().requires_grad_(True)
    b = (-(w0 @ (f_boundary + mean)) / 2).clone().requires_grad_(True)
    scale = f_inner.std(0).mean().clamp_min(1e-12) + (f_boundary - mean).norm() / max(len(w0) ** 0.5, 1.0)
    optimizer = torch.optim.LBFGS([w, b], max_iter=FIT_ITERATIONS, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        s_in = (f_inner @ w + b) / scale
        s_b = (f_boundary @ w + b) / scale
        value = torch.nn.functional.softplus(s_in).mean() + torch.nn.functional.softplus(-s_b)
        value.backward()
        return value

    optimizer.step(loss)
    with torch.no_grad():
        w, b = w.detach(), b.detach()
        if not (bool(((f_inner @ w + b) < 0).all()) and float(f_boundary @ w + b) > 0):
            return None
    return w, b


def place_readout(w: torch.Tensor, b: torch.Tensor, f_inner: torch.Tensor, f_boundary: torch.Tensor,
                  logit_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the boundary close to the planted point (CLOSENESS), then rescale to the model's logit range."""
    s_b = float(f_boundary @ w + b)
    b = b - CLOSENESS * s_b
    s = torch.cat([f_inner @ w + b, (f_boundary @ w + b).view(1)])
    span = float(s.max() - s.min())  # the two logits are -s/2 and s/2: their range is the range of s
    factor = logit_range / span if span > 0 else 1.0
    return w * factor, b * factor


def verdict(found: int, m: int, random_found: int) -> str:
    if m < MIN_SAMPLES:
        return "INCONCLUSIVE"
    if random_found >= PASS_RATE * m:
        return "INCONCLUSIVE"  # random points pass too: the test says nothing about the attack
    if found >= PASS_RATE * m:
        return "PASS"
    return "FAIL" if wilson_interval(found, m)[1] < PASS_RATE else "INCONCLUSIVE"


def binarized_attack(spec: AttackSpec, threat: ThreatModel, seed: int) -> BinarizedAttack | str:
    """How the arm's attack runs on the two-class model (its registry entry says), or why it cannot."""
    entry = spec.entry
    if entry.binarized is None:
        return f"{spec.label()} cannot run on a binarized model: {entry.not_binarizable}"
    return cast(BinarizedAttack, entry.load(entry.binarized)(spec, threat, seed))


@dataclass
class Binarized:
    """One arm's binarized model over the planted samples, and which samples set up."""

    model: BinarizedModel
    valid: torch.Tensor  # per sample: readout separated perfectly, class 0 at x and 1 at the planted point
    features: Features


def binarize(model: nn.Module, planted: Planted, batch_size: int, device: torch.device) -> Binarized:
    """Fit one readout per sample on ``model``'s features (``model`` already at its beta) and check the result
    in the attack's own layout."""
    model.eval()
    m = len(planted.positions)
    where = find_head(model, planted.x[:2].to(device))
    shape = planted.x.shape[1:]
    inner = torch.cat([planted.x.unsqueeze(1), planted.inner], dim=1)  # the point itself is an inner point
    per = inner.shape[1]
    images = torch.cat([inner.reshape(-1, *shape), planted.boundary]).to(device)
    feats, logits = features_and_logits(model, where, images, batch_size)
    f_inner, f_boundary = feats[: m * per].view(m, per, -1), feats[m * per :]
    weights, biases, ok = [], [], []
    for i in range(m):
        own = torch.cat([logits[i * per : (i + 1) * per], logits[m * per + i : m * per + i + 1]])
        fitted = fit_readout(f_inner[i], f_boundary[i])
        if fitted is None:
            weights.append(torch.zeros(feats.shape[1], dtype=torch.float64))
            biases.append(torch.zeros((), dtype=torch.float64))
            ok.append(False)
            continue
        w, b = place_readout(*fitted, f_inner[i], f_boundary[i], float(own.max() - own.min()))
        weights.append(w)
        biases.append(b)
        ok.append(True)
    binarized = BinarizedModel(model, where, torch.stack(weights), torch.stack(biases)).to(device)
    with torch.no_grad():  # in the attack's own layout: class 0 at each point, class 1 at each planted point
        at_point = binarized(planted.x.to(device)).argmax(1)
        at_boundary = binarized(planted.boundary.to(device)).argmax(1)
    valid = torch.tensor(ok, device=device) & (at_point == 0) & (at_boundary == 1)
    return Binarized(binarized, valid, where)


def attack_samples(binarized: Binarized, planted: Planted, threat: ThreatModel, eps: float, attack: AttackFn,
                   device: torch.device) -> torch.Tensor:
    """Per sample: did ``attack`` find a checked adversarial example within eps? (False where setup failed.)

    All samples go in one batch, one row per readout. An attack that then calls the model on a subset
    of the batch (a later restart, Square's surviving points) trips the readouts' layout check, and
    the samples are attacked one at a time instead.
    """
    m = len(planted.positions)
    found = torch.zeros(m, dtype=torch.bool, device=device)
    rows = torch.nonzero(binarized.valid).flatten()
    if not len(rows):
        return found
    x = planted.x.to(device)[rows]
    y0 = torch.zeros(len(rows), dtype=torch.long, device=device)
    model = binarized.model
    try:
        with model.using_rows(rows.cpu()):
            x_adv = attack(model, x, y0, eps)
    except LayoutError:
        x_adv = torch.cat([_one_row(model, int(r), x[k : k + 1], attack, eps) for k, r in enumerate(rows.tolist())])
    with model.using_rows(rows.cpu()):
        check = verify_adversarial(model, x, x_adv, y0, eps, threat, claimed=(x_adv != x).flatten(1).any(1))
    found[rows] = check.fooled
    return found


def _one_row(model: BinarizedModel, row: int, x: torch.Tensor, attack: AttackFn, eps: float) -> torch.Tensor:
    with model.using_rows(torch.tensor([row])):
        return attack(model, x, torch.zeros(1, dtype=torch.long, device=x.device), eps)


def run_arm(model: nn.Module, planted: Planted, threat: ThreatModel, eps: float, spec: AttackSpec, seed: int,
            batch_size: int, device: torch.device, label: str,
            on_phase: Callable[[str], None] | None = None) -> ArmBinarization:
    """The test on one arm (``model`` already at its beta), on the planted samples, with the arm's attack;
    ``on_phase`` hears each phase of :func:`phase_work` as it starts."""
    attack = binarized_attack(spec, threat, seed)
    if isinstance(attack, str):
        return ArmBinarization(label, spec.label(), "NOT RUN", note=attack)
    if not planted.positions:
        return ArmBinarization(label, attack.label, "NOT RUN", note="no sample points")
    tell = on_phase or (lambda _phase: None)
    tell("binarize")
    binarized = binarize(model, planted, batch_size, device)
    tell("attack")
    found = attack_samples(binarized, planted, threat, eps, attack.attack, device)
    tell("random baseline")
    random_found = random_baseline(binarized.model, planted, threat, eps, attack.queries, seed,
                                    batch_size, device) & binarized.valid
    return summarise(label, attack.label, binarized, found, random_found)


def summarise(label: str, attack_label: str, binarized: Binarized, found: torch.Tensor,
              random_found: torch.Tensor) -> ArmBinarization:
    valid = binarized.valid
    m_valid, k, r = int(valid.sum()), int((found & valid).sum()), int(random_found.sum())
    success = [(1 if bool(f) else 0) if bool(v) else -1 for f, v in zip(found.tolist(), valid.tolist(), strict=True)]
    note = binarized.features.reason
    if m_valid < MIN_SAMPLES:
        note = (note + "; " if note else "") + f"only {plural(m_valid, 'sample')} set up (at least {MIN_SAMPLES} needed)"
    return ArmBinarization(label, attack_label, verdict(k, m_valid, r), m_valid, k, r, len(valid) - m_valid,
                           binarized.features.kind, note, success)


def random_baseline(binarized: BinarizedModel, planted: Planted, threat: ThreatModel, eps: float, queries: int,
                     seed: int, batch_size: int, device: torch.device) -> torch.Tensor:
    """Per sample: does one of ``queries`` random points on the eps-sphere reach class 1?"""
    gen = torch.Generator().manual_seed(seed + 1)
    hits = []
    for i, point in enumerate(planted.x):
        candidates = sphere_points(point, threat, eps, queries, gen).to(device)
        hit = False
        for j in range(0, queries, batch_size):
            part = candidates[j : j + batch_size]
            with binarized.using_rows(torch.full((len(part),), i)), torch.no_grad():
                if bool((binarized(part).argmax(1) == 1).any()):
                    hit = True
                    break
        hits.append(hit)
    return torch.tensor(hits, device=device)


def sample_positions(eligible: list[int], n_samples: int, seed: int) -> list[int]:
    """Which evaluation points are the samples: a seeded draw from ``eligible`` (positions in the split), so
    the same seed gives the same samples. Fewer eligible points than samples: each is taken again, with
    planted points of its own (another test)."""
    if not eligible:
        return []
    gen = torch.Generator().manual_seed(seed)
    order = [eligible[i] for i in torch.randperm(len(eligible), generator=gen).tolist()]
    return sorted((order * (n_samples // len(order) + 1))[:n_samples])


def phase_work(spec: AttackSpec, threat: ThreatModel) -> dict[str, float]:
    """Work units (images through the model, back-propagated ones x3) one sample costs on one arm, per phase of
    :func:`run_arm` in its order (empty: the test cannot run)."""
    attack = binarized_attack(spec, threat, 0)
    if isinstance(attack, str):
        return {}
    return {"binarize": 2.0 * (N_INNER + 2), "attack": attack.queries * (3.0 + 1.0),
            "random baseline": float(attack.queries)}


def per_sample_work(spec: AttackSpec, threat: ThreatModel) -> float:
    """Work units one sample costs on one arm (0: the test cannot run)."""
    return sum(phase_work(spec, threat).values())


def compare_arms(base: ArmBinarization, ct: ArmBinarization) -> ArmsCompared | None:
    """Exact McNemar test on the samples both arms set up: does the attack succeed less often on CT?"""
    pairs = [(b, c) for b, c in zip(base.success, ct.success, strict=True) if b >= 0 and c >= 0]
    if not pairs:
        return None
    test = mcnemar_exact([b for b, _ in pairs], [c for _, c in pairs])
    return ArmsCompared(len(pairs), test.only_base, test.only_ct, test.p_value)
