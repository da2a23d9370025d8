"""SEAM as a training method, measured: on Task04_Hippocampus (3D) and DSB2018 (2D), at the same CPU budget per
training run, in one run. Masks are read only to score (and, as SEAM's image-level labels, to say which classes a
patch holds).

Split: `data.test_fraction` 0.2 of the cases is the held-out test part; fold 0 of 5 of the rest is split into
training cases (SEAM learns from their patches' presence labels; their pseudo masks are written) and validation
cases (they choose the maps' scales, shift and background score per class, never the test part).

Rows per dataset:
  baseline CAM      train.supervision seam with er/ecr/min-pool weights 0 (a classifier on the encoder), CAMs
  SEAM, no PCM      SEAM's loss (classification + ER + ECR + min pooling), the classifier's CAMs
  SEAM + PCM        the same model, CAMs refined by its PCM
  SEAM, PCM per class  the same model, per class the refined CAMs or not as validation chose (seam.refine auto, the
                    default: what the pseudo masks use)
  pseudo masks      the SEAM model's maps on the training cases (`seg pseudo`), scored against their masks
  on pseudo masks   the normal segmentation network trained on the pseudo masks (`seg train` on the pseudo cache)
  full supervision  the normal segmentation network trained on the masks
CAM rows are scored on the test part with each case's presence labels and the maps' scales, shift and background
score per class chosen on the validation cases for that row (as `seg train` chooses them for the model); the two
segmentation networks by `seg infer` on the test part (no TTA).

Run:  python benchmarks/seam.py [--minutes 5] [--datasets hippocampus dsb2018] [--threads 2] [--keep DIR]
      [--json out.json] [--seed 0] [--cam-only] [--validate] [--orientation-augment] [--seam-set KEY=VALUE ...]
  --cam-only: the three CAM rows, no pseudo masks or segmentation networks
  --orientation-augment: the SEAM networks also mirrored and rotated by 90 degrees (seam.orientation_augment true)
  --validate: the SEAM networks validate as `seg train` does by default (train.val_every auto) and keep the weights
              with the best validation Dice; otherwise every network trains without validation, last weights
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from train_hippocampus import run  # benchmarks/, first on sys.path when this file runs as a script

REPO = Path(__file__).resolve().parents[1]


SHARED = REPO.parent / "shared" / "data"
# per dataset: the data, the model section (segmentation network), and what the SEAM network changes
DATASETS = {
    # 16^3 patches (24x32x24 ones hold both classes 299 times in 300); a full-resolution stem and the CAM level at
    # 1/2: 8^3 cells per patch
    "hippocampus": {
        "root": SHARED / "Task04_Hippocampus",
        "model": {},
        "seam_model": {"stem_stride": 1},
        "seam": {"patch_size": [16, 16, 16], "cam_level": 1},
    },
    "dsb2018": {
        "root": SHARED / "DSB2018_nuclei",
        "model": yaml.safe_load((REPO / "configs" / "unet2d.yaml").read_text())["model"],
        # no warm-up: the nuclei classifier did not collapse without one, and the warm-up cost Dice here
        # (one 3-min run each: SEAM + PCM 0.694 without, 0.650 with seam.warmup 0.2)
        "seam_model": {},
        "seam": {"patch_size": [32, 32], "warmup": 0.0},
    },
}


def seg(*args) -> str:
    return run([sys.executable, "-m", "seg.cli", *map(str, args)])


def write_params(work: Path, spec: dict, minutes: float, threads: int, seed: int = 0) -> Path:
    cfg = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg["data"].update(
        {
            "root": str(spec["root"]),
            "cache_dir": str(work / "cache"),
            "folds": 5,
            "fold": 0,
            "seed": 0,
            "test_fraction": 0.2,
        }
    )
    cfg["model"] = {**cfg["model"], **spec["model"]}
    cfg["train"].update(
        {
            "max_time_minutes": minutes,
            "val_every": 100000,
            "num_threads": threads,
            "registered_model": None,
            "gate_images": False,
            "seed": seed,
            "tracking_uri": f"sqlite:///{work / 'mlflow.db'}",
        }
    )
    cfg["infer"].update({"tta": False, "num_threads": threads})
    cfg["seam"] = {
        **spec["seam"],
        "model": str(work / "seam"),
        "pseudo_cache": str(work / "pseudo"),
        "segmenter": str(work / "segmenter"),
    }
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def train(params: Path, work: Path, name: str, *sets: str) -> dict:
    model = work / name
    if not (model / "weights.pt").is_file():
        seg(
            "train",
            "--config",
            params,
            "--set",
            f"train.model_dir={model}",
            "--set",
            f"train.output_dir={work / 'out' / name}",
            "--set",
            f"train.metrics_dir={work / 'metrics' / name}",
            *[a for s in sets for a in ("--set", s)],
        )
    return json.loads((work / "metrics" / name / "train.json").read_text())


MAPS: dict = {}  # the last model's maps: its rows (no PCM, PCM, per class) differ only in what they pick


@torch.no_grad()
def cam_dice(model_dir: Path, cache_dir: Path, refine: bool | str) -> dict:
    """Per class, the scales, shift and background score of the maps chosen on fold 0's validation cases by the
    calibration `seg train` runs (`seg.seam.calibration.choose_maps`, with the model's seam section and seam.refine
    = `refine`; "auto": PCM or not per class too), Dice on the test part, with each case's presence labels."""
    import dataclasses

    from seg.data.cache import Cache
    from seg.infer.model_io import load_model
    from seg.seam.calibration import CaseMaps, choose_maps, chosen_scales
    from seg.seam.presence import presence_of
    from seg.seam.sweep import BACKGROUNDS, sweep_backgrounds

    bundle, cache = load_model(model_dir), Cache(cache_dir)
    net, k = bundle.net.eval(), len(bundle.class_names)

    def maps(ids) -> list[CaseMaps]:  # per case both kinds of maps, presence, mask (once per model)
        key = (str(model_dir), tuple(ids))
        if key not in MAPS:
            for old in [m for m in MAPS if m[0] != key[0]]:
                del MAPS[old]
            MAPS[key] = [
                CaseMaps(
                    *net.scale_maps_both(torch.from_numpy(case.image)[None])[:2],
                    presence_of(case.label, k)[None],
                    torch.from_numpy(case.label[None].astype(np.int64)),
                )
                for case in map(cache.case, ids)
            ]
        return MAPS[key]

    found = choose_maps(maps(cache.split(0).val), k, dataclasses.replace(net.seam, refine=refine))
    test = torch.stack(
        [sweep_backgrounds(found.maps(c.cam, c.refined, c.presence), c.label, k) for c in maps(cache.split(0).test)]
    )
    dice = [torch.nanmean(test[:, list(BACKGROUNDS).index(t), c]) for c, t in enumerate(found.background)]
    names = bundle.class_names[1:]
    return {
        "dice": {n: float(d) for n, d in zip(names, dice, strict=True)},
        "background": dict(zip(names, found.background, strict=True)),
        "shift": dict(zip(names, found.shift, strict=True)),
        "scales": chosen_scales(net.seam.infer_scales, found.scale_mask, names),
        "refine": dict(zip(names, found.refine, strict=True)),
        "cases": len(test),
    }


def infer_dice(params: Path, model: Path, out: Path) -> dict:
    seg(
        "infer",
        "--config",
        params,
        "--model",
        model,
        "--fold",
        "all",
        "--output",
        out,
        "--metrics-file",
        out.parent / f"{out.name}.json",
    )
    summary = json.loads((out / "metrics.json").read_text())["summary"]
    return {
        "dice": {k[5:]: v for k, v in summary.items() if k.startswith("dice_") and k != "dice_mean"},
        "cases": summary["cases"],
    }


def patch_presence(params: Path, n: int = 400) -> dict[str, int]:
    """How varied the presence labels are: of n training patches, how many hold no class, one, several."""
    from seg.config import load_config
    from seg.models.build import build_for
    from seg.seam.presence import PresenceSampling, presence_counts
    from seg.train.datamodule import SegDataModule

    cfg = load_config(params, {"train.supervision": "seam"})
    net = build_for(cfg)
    dm = SegDataModule(cfg.data, cfg.train, cfg.model.spatial_dims, net.size_multiple, PresenceSampling(cfg.seam))
    dm.setup("fit")
    return presence_counts(dm.train_set, n)


def bench(
    name: str,
    spec: dict,
    work: Path,
    minutes: float,
    threads: int,
    cam_only: bool = False,
    seed: int = 0,
    validate: bool = False,
    orientation_augment: bool = False,
    seam_set: tuple[str, ...] = (),
) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    params = write_params(work, spec, minutes, threads, seed)
    if not (work / "cache" / "fingerprint.json").is_file():
        seg("preprocess", "--config", params)
    seam_sets = [f"model.{k}={v}" for k, v in spec["seam_model"].items()]
    seam_sets += ["seam.orientation_augment=true"] if orientation_augment else []
    seam_sets += ["train.val_every=auto"] if validate else []
    seam_sets += list(seam_set)
    res: dict = {"presence": patch_presence_with(params, spec)}
    start = time.perf_counter()
    base = train(
        params,
        work,
        "baseline",
        "train.supervision=seam",
        "seam.er_weight=0",
        "seam.ecr_weight=0",
        "seam.min_weight=0",
        *seam_sets,
    )
    full_seam = train(params, work, "seam", "train.supervision=seam", *seam_sets)
    rows = {
        "baseline CAM": cam_dice(work / "baseline", work / "cache", False),
        "SEAM, no PCM": cam_dice(work / "seam", work / "cache", False),
        "SEAM + PCM": cam_dice(work / "seam", work / "cache", True),
        "SEAM, PCM per class": cam_dice(work / "seam", work / "cache", "auto"),
    }
    for row, t in (
        ("baseline CAM", base),
        ("SEAM, no PCM", full_seam),
        ("SEAM + PCM", full_seam),
        ("SEAM, PCM per class", full_seam),
    ):
        rows[row]["epochs"] = t["epochs"]
    if cam_only:
        return {**res, "rows": rows, "seconds": round(time.perf_counter() - start, 1)}
    if not (work / "pseudo" / "pseudo.json").is_file():
        seg("pseudo", "--config", params, "--model", work / "seam")
    pseudo = json.loads((work / "pseudo" / "pseudo.json").read_text())
    rows["pseudo masks (train cases)"] = {
        "dice": pseudo["dice_mean"],
        "background": pseudo["background"],
        "shift": pseudo.get("shift"),
        "scales": pseudo.get("scales"),
        "refine": pseudo.get("refine"),
        "cases": len(pseudo["cases"]),
    }
    seg_pseudo = train(params, work, "segmenter", f"data.cache_dir={work / 'pseudo'}")
    rows["on pseudo masks"] = {
        **infer_dice(params, work / "segmenter", work / "pred_segmenter"),
        "epochs": seg_pseudo["epochs"],
    }
    full = train(params, work, "full")
    rows["full supervision"] = {**infer_dice(params, work / "full", work / "pred_full"), "epochs": full["epochs"]}
    res["rows"] = rows
    res["seconds"] = round(time.perf_counter() - start, 1)
    return res


def placement(row: dict, classes: list[str]) -> str:
    """A CAM row's per-class shift, scales and maps, e.g. '0,1,-3 / 1,3,2; 0.5+1 / 0.5+1+1.5; PCM / CAM' (empty for
    the others)."""
    shift, scales, refine = row.get("shift"), row.get("scales"), row.get("refine")
    if not isinstance(shift, dict) or not isinstance(scales, dict):
        return ""
    return (
        " / ".join(",".join(map(str, shift[c])) for c in classes)
        + "; "
        + " / ".join("+".join(f"{f:g}" for f in scales[c]) for c in classes)
        + ("; " + " / ".join("PCM" if refine[c] else "CAM" for c in classes) if isinstance(refine, dict) else "")
    )


def patch_presence_with(params: Path, spec: dict) -> dict[str, int]:
    """`patch_presence` for the SEAM network's model section (its size multiple rounds the patch)."""
    cfg = yaml.safe_load(params.read_text())
    cfg["model"].update(spec["seam_model"])
    alt = params.with_name("params_seam.yaml")
    alt.write_text(yaml.safe_dump(cfg))
    return patch_presence(alt)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=5.0, help="training budget of every training run")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keep", default=None, help="keep the work folders here (a rerun reuses finished models)")
    p.add_argument("--json", default=None)
    p.add_argument("--seed", type=int, default=0, help="train.seed of every training run (the split stays)")
    p.add_argument(
        "--validate",
        action="store_true",
        help="SEAM networks validate by the defaults' plan and keep their best weights",
    )
    p.add_argument(
        "--orientation-augment",
        action="store_true",
        help="SEAM networks with train.augment's mirroring and rot90 (seam.orientation_augment true)",
    )
    p.add_argument(
        "--seam-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for both SEAM networks (baseline and SEAM), e.g. seam.cam_level=1",
    )
    p.add_argument("--cam-only", action="store_true", help="only the CAM rows (baseline, SEAM without and with PCM)")
    args = p.parse_args()
    for name in args.datasets:
        if not DATASETS[name]["root"].is_dir():
            raise SystemExit(f"{DATASETS[name]['root']}: dataset not found (../shared/data beside the repository).")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp).resolve()
        for name in args.datasets:
            results[name] = bench(
                name,
                DATASETS[name],
                root / name,
                args.minutes,
                args.threads,
                args.cam_only,
                args.seed,
                args.validate,
                args.orientation_augment,
                tuple(args.seam_set),
            )
            print(json.dumps({name: results[name]}), flush=True)
    from seg.runtime import describe_machine

    print(f"machine: {describe_machine().line()}")
    print(f"{args.minutes:g} min of training per run, {args.threads} threads; test part: data.test_fraction 0.2")
    for name, res in results.items():
        classes = list(res["rows"]["baseline CAM"]["dice"])
        print(f"\n{name}: training patches' presence labels {res['presence']}")
        print(
            f"{'':28s} " + " ".join(f"{c[:10]:>10s}" for c in classes) + f" {'mean':>7s} {'bg':>11s} {'epochs':>7s} "
            f" shift; scales; maps (per class)"
        )
        for row, r in res["rows"].items():
            d = [r["dice"][c] for c in classes]
            bg = "/".join(f"{r['background'][c]:.2f}" for c in classes) if "background" in r else ""
            print(
                f"{row:28s} " + " ".join(f"{v:10.4f}" for v in d) + f" {np.mean(d):7.4f} {bg:>11s} "
                f"{r.get('epochs', ''):>7}  {placement(r, classes)}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
