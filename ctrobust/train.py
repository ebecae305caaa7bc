"""Train a built-in model; writes the weights and, beside them, how they were made."""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
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


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / len(x)


def train_model(cfg: TrainConfig, out: Path, command: str = "", progress: bool = True) -> dict[str, object]:
    """Train with Adam and a cosine schedule, save the state dict to ``out`` and metadata to ``out.json``."""
    seed_everything(cfg.seed)
    _, model = build_model(cfg.model, cfg.dataset)
    x_train, y_train = load_train_set(cfg.dataset, cfg.data_dir)
    x_test, y_test = load_test_set(cfg.dataset, cfg.data_dir)
    if cfg.n_train is not None:
        x_train, y_train = x_train[: cfg.n_train], y_train[: cfg.n_train]
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = (len(x_train) + cfg.batch_size - 1) // cfg.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr * 3, total_steps=cfg.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(cfg.seed)
    loss_fn = nn.CrossEntropyLoss()
    start = time.time()
    bar = tqdm(total=cfg.epochs * steps_per_epoch, desc=f"train {cfg.model}", disable=not progress, unit="batch")
    for _epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            xb = x_train[idx]
            # Random horizontal flip: garments are left-right symmetric.
            flip = torch.rand(len(xb), generator=gen) < 0.5
            xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
            loss = loss_fn(model(xb), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    test_acc = accuracy(model, x_test, y_test)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    meta: dict[str, object] = {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "command": command or " ".join(["ctrobust", *sys.argv[1:]]),
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "n_train": len(x_train),
        "test_accuracy": test_acc,
        "train_seconds": round(time.time() - start, 1),
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''} threads={torch.get_num_threads()}".strip(),
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
