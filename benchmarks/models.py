"""Benchmark our Attention U-Net against MONAI's AttentionUnet and UNet on CPU, side by side.

Networks (all with channels=(16, 32, 64, 128), strides=(2, 2, 2), in_channels=1):
  ours        seg.models.build_model(ModelConfig(..., deep_supervision=0)), otherwise the project default config
              (model.stem_stride 2: the U at half resolution plus a light full-resolution head, which runs
              channels-last whatever the input's layout: the network's own choice, as in `seg infer`)
  ours-full   the previous default: model.stem_stride=1, first_stage_convs=1 (level 0 at full resolution, one
              convolution per side)
  monai-att   monai.networks.nets.AttentionUnet (MONAI defaults otherwise)
  monai-unet  monai.networks.nets.UNet (MONAI defaults otherwise)
  *-cl        the same network and input in channels-last memory layout (torch.channels_last_3d in 3D), as
              `seg train` runs ours (train.channels_last); monai-att-cl gives MONAI the same layout, for the
              like-for-like ratio

Settings: 3D patch 48x64x48 at batch 4 (3 classes) and 2D 256x256 at batch 16 (2 classes), each in float32
and in bfloat16 autocast (torch.autocast("cpu", dtype=torch.bfloat16)).

For every network, setting and precision it reports
  params        trainable parameter count
  train/s       training throughput, samples/s: forward + cross-entropy against a random label + backward
                + AdamW step; median step time over --steps timed steps after --warmup untimed ones
  fwd/s         forward-only throughput, samples/s (eval mode, torch.inference_mode)
  GFLOP         per training step (forward + backward) and per forward, for the whole batch, counted with
                torch.utils.flop_counter.FlopCounterMode (the optimizer step is not counted; it is negligible)
  GFLOP/s, %pk  counted FLOP / measured time, and that as a percentage of this machine's matmul peak
  MiB           peak resident-memory increase during training and during inference, over the process' RSS
                after imports, model, optimizer and input are built
The matmul peak (square matmul, float32 and bfloat16, best of a few repeats, before and after the networks, so
that a busy spell on a shared CPU lowers it less) is measured in the same run.

Every measurement runs in its own process, forked from a parent that has only imported the libraries, so the
memory peaks do not mix: the child resets its peak RSS (Linux /proc/self/clear_refs, "5") and reads VmHWM;
where that is unavailable it falls back to the ru_maxrss increase (an underestimate if imports peaked higher).

The machine (CPU model, torch's CPU capability, native bf16 or not, GPU) is printed first. For every network and
setting, `seg.runtime.tune_training` (what `precision: auto` runs before `seg train`) picks a precision on this
machine; its pick is marked `*` in the tables, and the last table compares ours with MONAI's AttentionUnet
each at the precision auto picks for it.

Attention variants (`--tables attention`, also part of `all`): one table of the training step at 3D 32x64x32,
batch 4, each row at the precision auto picks for it (bf16 autocast where it picks bf16-mixed): seg's default
(gates), + CBAM on the decoder, + global self-attention at the bottleneck, + windowed self-attention at levels 1-2,
+ a non-local block at the bottleneck, configs/self_attention.yaml's network, and MONAI's AttentionUnet, UNETR
(feature 16, hidden 384, 6 heads) and SwinUNETR (feature 24) as anchors (`attention_variants.py` defines them).
Columns: precision, parameters, median step time, samples/s, samples/s relative to the default, peak memory.

Run:  python benchmarks/models.py [--threads 2] [--steps 5] [--warmup 2] [--tables all|layouts|attention]
      [--json out.json]
      python benchmarks/models.py --quick        # smoke run: tiny inputs (attention table: batch 1), 1 step
Timings on a shared CPU are noisy; compare numbers from the same run.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from attention_variants import attention_table  # benchmarks/, first on sys.path when this file runs as a script
from measure import PeakRSS, autocast, counted_gflop, in_fresh_process, median_time
from monai.networks.nets import AttentionUnet, UNet

from seg.config import ModelConfig
from seg.models import build_model, layers

CHANNELS, STRIDES = (16, 32, 64, 128), (2, 2, 2)
NETWORKS = ("ours", "ours-cl", "ours-full", "monai-att", "monai-att-cl", "monai-unet")
OURS = ("ours", "ours-cl", "ours-full")
BASELINES = {"ours": "monai-att", "ours-cl": "monai-att-cl", "ours-full": "monai-att"}  # like-for-like layout
PRECISIONS = ("float32", "bfloat16")
# name -> (spatial size, batch, classes); --quick shrinks them
SETTINGS = {"3d": ((48, 64, 48), 4, 3), "2d": ((256, 256), 16, 2)}
QUICK_SETTINGS = {"3d": ((16, 32, 16), 1, 3), "2d": ((64, 64), 2, 2)}


def memory_format(name: str, dims: int) -> torch.memory_format:
    return layers.channels_last(dims) if name.endswith("-cl") else torch.contiguous_format


def build_network(name: str, dims: int, classes: int) -> torch.nn.Module:
    name = name.removesuffix("-cl")
    if name in OURS:
        cfg = ModelConfig(
            spatial_dims=dims,
            in_channels=1,
            out_channels=classes,
            channels=CHANNELS,
            strides=STRIDES,
            deep_supervision=0,
            **(dict(stem_stride=1, first_stage_convs=1) if name == "ours-full" else {}),
        )
        return build_model(cfg)
    cls = {"monai-att": AttentionUnet, "monai-unet": UNet}[name]
    return cls(dims, 1, classes, channels=CHANNELS, strides=STRIDES)


def measure(net_name: str, setting: str, precision: str, args: argparse.Namespace) -> dict:
    """One network x setting x precision; meant to run in a fresh process."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size, batch, classes = (QUICK_SETTINGS if args.quick else SETTINGS)[setting]
    layout = memory_format(net_name, len(size))
    model = build_network(net_name, len(size), classes).to(memory_format=layout)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 1, *size).contiguous(memory_format=layout)
    y = torch.randint(0, classes, (batch, *size))

    def train_step():
        opt.zero_grad(set_to_none=True)
        with autocast(precision):
            loss = F.cross_entropy(model(x), y)
        loss.backward()

    def full_train_step():
        train_step()
        opt.step()

    def forward():
        with torch.inference_mode(), autocast(precision):
            model(x)

    mem = PeakRSS()
    model.eval()  # forward first: its peak is below training's, so the later reading is training's own
    t_fwd = median_time(forward, args.warmup, args.steps)
    mem_fwd = mem.increase_mib()
    model.train()
    t_train = median_time(full_train_step, args.warmup, args.steps)
    mem_train = mem.increase_mib()
    gf_train = counted_gflop(train_step)
    model.eval()
    gf_fwd = counted_gflop(forward)
    return dict(
        network=net_name,
        setting=setting,
        precision=precision,
        size=list(size),
        batch=batch,
        params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        train_sps=batch / t_train,
        fwd_sps=batch / t_fwd,
        train_gflop=gf_train,
        fwd_gflop=gf_fwd,
        train_gflops=gf_train / t_train,
        fwd_gflops=gf_fwd / t_fwd,
        train_mib=mem_train,
        fwd_mib=mem_fwd,
        exact_memory=mem.exact,
    )


LIGHTNING_TO_DTYPE = {"32": "float32", "bf16-mixed": "bfloat16"}


def auto_pick(net_name: str, setting: str, args: argparse.Namespace) -> str:
    """The precision `precision: auto` resolves to for this network and setting here (a fresh measurement)."""
    import os
    import tempfile

    from seg.runtime import tune_training

    os.environ["SEG_CACHE_DIR"] = tempfile.mkdtemp(prefix="seg-bench-")
    torch.set_num_threads(args.threads)
    size, batch, classes = (QUICK_SETTINGS if args.quick else SETTINGS)[setting]
    net = build_network(net_name, len(size), classes)
    settings = tune_training(net, size, 1, batch, channels_last=net_name.endswith("-cl"), config_key=net_name)
    return LIGHTNING_TO_DTYPE[settings.precision]


def matmul_peak(n: int, repeats: int, threads: int) -> dict[str, float]:
    """Best-of-`repeats` GFLOP/s of an n x n matmul, per precision."""
    torch.set_num_threads(threads)
    peaks = {}
    for precision in PRECISIONS:
        dtype = getattr(torch, precision)
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b  # warm-up
        best = min(median_time(lambda a=a, b=b: a @ b, 0, 1) for _ in range(repeats))
        peaks[precision] = 2 * n**3 / best / 1e9
    return peaks


def _row(results: list[dict], network: str, setting: str, precision: str) -> dict:
    return next(r for r in results if (r["network"], r["setting"], r["precision"]) == (network, setting, precision))


# ------------------------------------------------------------------------------------------ report

COLUMNS = [  # header, key, width, format spec
    ("network", "network", 12, "<"),
    ("params", "params", 9, ","),
    ("train/s", "train_sps", 8, ".2f"),
    ("fwd/s", "fwd_sps", 8, ".2f"),
    ("GF/train", "train_gflop", 9, ".1f"),
    ("GF/fwd", "fwd_gflop", 8, ".1f"),
    ("GF/s tr", "train_gflops", 8, ".1f"),
    ("%pk tr", "train_pct", 7, ".1f"),
    ("GF/s fw", "fwd_gflops", 8, ".1f"),
    ("%pk fw", "fwd_pct", 7, ".1f"),
    ("MiB tr", "train_mib", 8, ".0f"),
    ("MiB fw", "fwd_mib", 8, ".0f"),
]
RATIOS = [("train/s", "train_sps"), ("fwd/s", "fwd_sps"), ("params", "params"), ("MiB train", "train_mib")]


def table_line(row: dict | None) -> str:
    """One fixed-width line: the header when row is None; the first column is left-aligned."""
    cells = []
    for i, (header, key, width, spec) in enumerate(COLUMNS):
        text = header if row is None else format(row[key], spec)
        cells.append(text.rjust(width) if i else text.ljust(width))
    return " ".join(cells)


def print_results(
    results: list[dict], peaks: dict[str, float], args: argparse.Namespace, picks: dict[tuple[str, str], str]
) -> list[dict]:
    print(
        f"\nmatmul peak ({args.matmul}x{args.matmul}, {args.threads} threads): "
        + ", ".join(f"{p} {g:,.0f} GFLOP/s" for p, g in peaks.items())
    )
    ratios = []
    for setting in SETTINGS:
        for precision in PRECISIONS:
            rows = {r["network"]: r for r in results if r["setting"] == setting and r["precision"] == precision}
            first = next(iter(rows.values()))
            shape = "x".join(map(str, first["size"]))
            print(f"\n{setting} {shape}, batch {first['batch']}, {precision}")
            print(table_line(None))
            for r in rows.values():
                r["train_pct"] = 100 * r["train_gflops"] / peaks[precision]
                r["fwd_pct"] = 100 * r["fwd_gflops"] / peaks[precision]
                mark = "*" if picks[(r["network"], setting)] == precision else ""
                print(table_line({**r, "network": r["network"] + mark}))
            for name in OURS:
                ours, att = rows[name], rows[BASELINES[name]]
                ratios.append(
                    dict(
                        network=name,
                        baseline=BASELINES[name],
                        setting=setting,
                        precision=precision,
                        **{key: ours[key] / att[key] if att[key] else float("nan") for _, key in RATIOS},
                    )
                )
    print("\nratios ours / MONAI AttentionUnet in the same memory layout")
    print(f"{'network':<10} {'vs':<12} {'setting':<8} {'precision':<9} " + " ".join(f"{h:>10}" for h, _ in RATIOS))
    for r in ratios:
        print(
            f"{r['network']:<10} {r['baseline']:<12} {r['setting']:<8} {r['precision']:<9} "
            + " ".join(f"{r[k]:>10.2f}" for _, k in RATIOS)
        )
    print("\nratios at the precision auto picks for each network (* in the tables), training step and forward")
    for setting in SETTINGS:
        for name in OURS:
            base = BASELINES[name]
            ours, att = (_row(results, net, setting, picks[(net, setting)]) for net in (name, base))
            print(
                f"{name:<10} ({picks[(name, setting)]}) vs {base} ({picks[(base, setting)]}) {setting}: "
                f"train/s {ours['train_sps'] / att['train_sps']:.2f}x, fwd/s {ours['fwd_sps'] / att['fwd_sps']:.2f}x"
            )
            ratios.append(
                dict(
                    network=name,
                    baseline=base,
                    setting=setting,
                    precision="auto",
                    train_sps=ours["train_sps"] / att["train_sps"],
                    fwd_sps=ours["fwd_sps"] / att["fwd_sps"],
                    params=ours["params"] / att["params"],
                    train_mib=ours["train_mib"] / att["train_mib"],
                )
            )
    if not all(r["exact_memory"] for r in results):
        print("note: /proc/self/clear_refs unavailable; memory is the ru_maxrss increase (may underestimate)")
    return ratios


def layout_tables(args: argparse.Namespace, start: float) -> dict:
    """The networks x settings x precisions tables and their ratios; returns every figure."""
    repeats = 3 if args.quick else 5
    peaks = in_fresh_process(matmul_peak, args.matmul, repeats, args.threads)
    results = []
    for setting in SETTINGS:
        for precision in PRECISIONS:
            for net in NETWORKS:
                results.append(in_fresh_process(measure, net, setting, precision, args))
                r = results[-1]
                print(
                    f"  measured {setting} {precision:<8} {net:<12} train {r['train_sps']:7.2f}/s "
                    f"fwd {r['fwd_sps']:7.2f}/s  [{time.perf_counter() - start:5.0f} s]",
                    flush=True,
                )
    picks = {
        (net, setting): in_fresh_process(auto_pick, net, setting, args) for setting in SETTINGS for net in NETWORKS
    }
    peaks_after = in_fresh_process(matmul_peak, args.matmul, repeats, args.threads)
    peaks = {p: max(g, peaks_after[p]) for p, g in peaks.items()}
    ratios = print_results(results, peaks, args, picks)
    return dict(
        matmul_peak_gflops=peaks,
        auto_picks={f"{n} {s}": p for (n, s), p in picks.items()},
        results=results,
        ratios=ratios,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps (default 2)")
    parser.add_argument("--matmul", type=int, default=4096, help="matmul size for the peak (default 4096)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny inputs, 1 warm-up and 1 timed step")
    parser.add_argument(
        "--tables", choices=("all", "layouts", "attention"), default="all", help="which tables (default all)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write all figures as JSON")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup, args.matmul = 1, 1, 1024

    from seg.runtime import describe_machine

    print(f"machine: {describe_machine().line()}", flush=True)
    start = time.perf_counter()
    figures = dict(args=vars(args), machine=describe_machine().line())
    if args.tables in ("all", "layouts"):
        figures.update(layout_tables(args, start))
    if args.tables in ("all", "attention"):
        figures["attention"] = attention_table(args.quick, args.threads, args.warmup, args.steps)
    print(
        f"\ntotal {time.perf_counter() - start:.0f} s; {describe_machine().line()}, threads {args.threads}, "
        f"steps {args.steps}, warm-up {args.warmup}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
