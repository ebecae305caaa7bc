"""Train a built-in or paper model; resumable, and writes how the weights were made beside them.

Recipes: ``adam`` (smallcnn: Adam, one-cycle, horizontal flips) and ``paper`` (the paper's CIFAR
ResNets: SGD lr 0.1, momentum 0.9, weight decay 5e-4, lr x0.2 at epochs 60/120/160, batch 128,
random crop with 4 px padding and horizontal flips, 200 epochs; with fewer epochs the lr steps at
the same fractions of the run). ``time_limit`` stops after the last whole epoch that fits in it
(for a check on a machine lent for minutes). After every epoch the full
training state goes to ``<out>.resume.pt``; a new run with the same ``--out`` continues from it.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ctrobust.data.registry import load_test_set, load_train_set
from ctrobust.models.registry import build_model
from ctrobust.seeding import seed_everything


@dataclass
class TrainConfig:
    model: str = "smallcnn"
    dataset: str = "fashion-mnist"
    epochs: int = 4
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    n_train: int | None = None
    data_dir: str | None = None
    recipe: str = "adam"
    max_batches: int | None = None  # stop after this many batches in all (for smoke tests)
    device: str = "cpu"
    time_limit: float | None = None  # seconds: no epoch is started that would end after it


def paper_config(model: str, dataset: str, **overrides: object) -> TrainConfig:
    base = TrainConfig(model=model, dataset=dataset, epochs=200, batch_size=128, lr=0.1, recipe="paper")
    return TrainConfig(**{**asdict(base), **overrides})


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            correct += int((model(x[i : i + batch_size].to(device)).argmax(1).cpu() == y[i : i + batch_size]).sum())
    return correct / len(x)


def _augment(xb: torch.Tensor, recipe: str, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(len(xb), generator=gen) < 0.5
    xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
    if recipe == "paper":  # random crop with 4 px zero padding
        padded = F.pad(xb, (4, 4, 4, 4))
        dx, dy = torch.randint(0, 9, (2, len(xb)), generator=gen).tolist()
        h, w = xb.shape[2:]
        xb = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(len(xb))])
    return xb


def _optimizer(model: nn.Module, cfg: TrainConfig, steps_per_epoch: int
               ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, str]:
    if cfg.recipe == "paper":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=5e-4)
        milestones = sorted({max(1, round(cfg.epochs * f)) for f in (0.3, 0.6, 0.8)})  # 60/120/160 of 200
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.2)
        return opt, sched, "epoch"
    adam = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    cycle = torch.optim.lr_scheduler.OneCycleLR(adam, max_lr=cfg.lr * 3, total_steps=cfg.epochs * steps_per_epoch)
    return adam, cycle, "step"


def resume_path(out: Path) -> Path:
    return out.with_suffix(".resume.pt")


def train_model(cfg: TrainConfig, out: Path, command: str = "", progress: bool = True) -> dict[str, object]:
    """Train, save the state dict to ``out`` and metadata to ``out.json``; resumes from ``out.resume.pt``."""
    seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    model = build_model(cfg.model, cfg.dataset).to(device)
    x_train, y_train = load_train_set(cfg.dataset, cfg.data_dir)
    x_test, y_test = load_test_set(cfg.dataset, cfg.data_dir)
    if cfg.n_train is not None:
        x_train, y_train = x_train[: cfg.n_train], y_train[: cfg.n_train]
    steps_per_epoch = (len(x_train) + cfg.batch_size - 1) // cfg.batch_size
    opt, sched, sched_every = _optimizer(model, cfg, steps_per_epoch)
    gen = torch.Generator().manual_seed(cfg.seed)
    start_epoch, elapsed = 0, 0.0
    state_file = resume_path(out)
    if state_file.is_file():
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        start_epoch, elapsed = int(state["epoch"]), float(state["elapsed"])
    loss_fn = nn.CrossEntropyLoss()
    start = time.time()
    done_batches = 0
    bar = tqdm(total=(cfg.epochs - start_epoch) * steps_per_epoch, desc=f"train {cfg.model}", disable=not progress,
               unit="batch", mininterval=1.0)
    epochs_run = start_epoch
    for epoch in range(start_epoch, cfg.epochs):
        epoch_start = time.time()
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            xb = _augment(x_train[idx], cfg.recipe, gen).to(device)
            loss = loss_fn(model(xb), y_train[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched_every == "step":
                sched.step()
            bar.update(1)
            done_batches += 1
            if cfg.max_batches is not None and done_batches >= cfg.max_batches:
                break
        if sched_every == "epoch":
            sched.step()
        if cfg.max_batches is not None and done_batches >= cfg.max_batches:
            break
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = state_file.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "generator": gen.get_state(), "epoch": epoch + 1, "elapsed": elapsed + time.time() - start}, tmp)
        tmp.replace(state_file)
        epochs_run = epoch + 1
        took = time.time() - epoch_start
        if cfg.time_limit is not None and time.time() - start + took > cfg.time_limit:
            break  # the next epoch would end after the limit
    bar.close()
    test_acc = accuracy(model, x_test, y_test)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    if state_file.is_file() and (cfg.max_batches is None):
        state_file.unlink()
    meta: dict[str, object] = {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "command": command,
        "seed": cfg.seed,
        "recipe": cfg.recipe,
        "epochs": cfg.epochs,
        "epochs_trained": epochs_run,
        "time_limit": cfg.time_limit,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "n_train": len(x_train),
        "max_batches": cfg.max_batches,
        "batches_trained": done_batches,
        "resumed_from_epoch": start_epoch,
        "test_accuracy": test_acc,
        "train_seconds": round(elapsed + time.time() - start, 1),
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''} threads={torch.get_num_threads()}".strip(),
        "device": str(device),
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
