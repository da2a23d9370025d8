"""Per-epoch metrics for DVC: a CSV history, a PNG of the curves (offline, unlike DVC's HTML template), and
the final summary JSON for `dvc metrics show`."""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import lightning as L


class HistoryCallback(L.Callback):
    plot_every_s = 60.0  # the PNG costs ~0.3 s (matplotlib); the CSV, written every epoch, costs nothing

    def __init__(self, metrics_dir: Path, foreground: list[str]):
        self.dir, self.foreground = metrics_dir, foreground
        self.rows: list[dict] = []
        self._plotted_at = -math.inf

    def state_dict(self) -> dict:
        return {"rows": self.rows}  # kept in checkpoints, so a resumed run keeps its whole history

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state.get("rows", []))

    def validations(self) -> int:
        """Validations recorded so far (rows with a validation Dice)."""
        return sum(not math.isnan(r["val_dice_mean"]) for r in self.rows)

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """After the module's own epoch end (SEAM logs its Dice there), before the next training epoch."""
        if trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        row["train_loss"] = math.nan  # this epoch's mean loss is reduced after validation: on_train_epoch_end
        row["val_dice_mean"] = float(m.get("val/dice_mean", math.nan))
        for name in self.foreground:
            row[f"val_dice_{name}"] = float(m.get(f"val/dice_{name}", math.nan))
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        if trainer.global_rank == 0:
            self.write_history()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """Every epoch gets a row, validated or not (validation, when it runs, comes first and adds the row)."""
        if trainer.sanity_checking:
            return
        loss = trainer.callback_metrics.get("train/loss")
        if not self.rows or self.rows[-1]["epoch"] != trainer.current_epoch:
            row = {"epoch": trainer.current_epoch, "step": trainer.global_step, "train_loss": math.nan}
            row["val_dice_mean"] = math.nan
            row.update({f"val_dice_{name}": math.nan for name in self.foreground})
            self.rows.append(row)
        if loss is not None:
            self.rows[-1]["train_loss"] = float(loss)
        if trainer.global_rank == 0:
            self.write_history()

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.global_rank == 0 and self.rows:
            self.write_history(plot=True)

    def write_history(self, plot: bool = False) -> None:
        """The CSV every call; the PNG when asked or when the last one is `plot_every_s` old (short epochs would
        otherwise spend a sixth of the training time in matplotlib)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "train_history.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)
        if plot or time.monotonic() - self._plotted_at >= self.plot_every_s:
            self._plot()
            self._plotted_at = time.monotonic()

    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        epochs = [r["epoch"] for r in self.rows]
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
        a.plot(epochs, [r["train_loss"] for r in self.rows])
        a.set(title="train loss", xlabel="epoch")
        for key in ["val_dice_mean", *(f"val_dice_{n}" for n in self.foreground)]:
            b.plot(epochs, [r[key] for r in self.rows], label=key.removeprefix("val_dice_"))
        b.set(title="validation Dice", xlabel="epoch", ylim=(0, 1))
        b.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(self.dir / "train_curves.png")
        plt.close(fig)

    def summary(self, elapsed_s: float, samples_per_epoch: int) -> dict:
        if not self.rows:
            return {"epochs": 0, "train_time_s": round(elapsed_s, 1)}
        best = max(self.rows, key=lambda r: -1 if math.isnan(r["val_dice_mean"]) else r["val_dice_mean"])
        out = {f"best_{k}": v for k, v in best.items() if k.startswith("val_") and not math.isnan(v)}
        out.update(
            best_epoch=best["epoch"],
            epochs=self.rows[-1]["epoch"] + 1,
            train_time_s=round(elapsed_s, 1),
            samples_per_s=round(samples_per_epoch * (self.rows[-1]["epoch"] + 1) / max(elapsed_s, 1e-9), 2),
        )
        return out

    def write_summary(self, metrics: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "train.json").write_text(json.dumps(metrics, indent=1))
