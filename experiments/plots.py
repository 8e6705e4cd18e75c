"""The sweep's figures, drawn with matplotlib's Agg canvas (no display, no pyplot state).

- ``feature_distribution.png``: histogram of feature values with, per keep
  ratio, the magnitude cut-off of element-wise top-k selection and the RMS
  value of the weakest block that global block selection keeps.
- ``block_energy_dist.png``: per mode, the distribution of the scores that
  selection ranks (block energies; summed over channels for region-wise),
  with each keep ratio's cut-off.
- ``feature_maps_ratio.png``: the strongest channels of one image, original
  and decoded at each keep ratio, for each mode.
- ``accuracy_vs_compression.png``: accuracy against real BPP per setting
  group, with and without fine-tuning, beside the baselines.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from codec import CodecConfig, decode, encode
from codec.config import kept_count
from codec.selection import block_energy

FIGURE_NAMES = (
    "feature_distribution.png",
    "block_energy_dist.png",
    "feature_maps_ratio.png",
    "accuracy_vs_compression.png",
)

# Channels shown per mode in feature_maps_ratio.png.
SHOWN_CHANNELS = 3


def save_figure(figure: Figure, path: Path) -> None:
    """Render ``figure`` with the Agg canvas into a PNG file."""
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=110)


def selection_scores(feature_map: np.ndarray, mode: str, block_size: int, border: int) -> np.ndarray:
    """Return the scores that selection ranks for one C x H x W map: rows of candidates competing together."""
    energy = block_energy(feature_map, block_size, border)
    if mode == "global":
        return energy.reshape(1, -1)
    if mode == "region-wise":
        return energy.sum(axis=0, keepdims=True)
    return energy


def score_cutoff(scores: np.ndarray, keep_ratio: float) -> float:
    """Return the median over rows of the lowest score that top-k selection keeps."""
    k = kept_count(keep_ratio, scores.shape[1])
    kth_largest = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    return float(np.median(kth_largest))


def mode_cutoffs(features: np.ndarray, mode: str, keep_ratios: list[float], block_size: int,
                 border: int) -> tuple[np.ndarray, dict[float, float]]:
    """Return all scores of a mode over the maps and, per keep ratio, the median cut-off over the maps."""
    per_map = [selection_scores(feature_map, mode, block_size, border) for feature_map in features]
    cutoffs = {keep: float(np.median([score_cutoff(scores, keep) for scores in per_map])) for keep in keep_ratios}
    return np.concatenate([scores.ravel() for scores in per_map]), cutoffs


def log_bins(values: np.ndarray, count: int = 60) -> np.ndarray:
    """Return logarithmic histogram bins that cover the positive ``values``."""
    positive = values[values > 0]
    if positive.size == 0:
        return np.logspace(-3, 0, count)
    return np.logspace(np.log10(positive.min()), np.log10(positive.max()), count)


def plot_feature_distribution(features: np.ndarray, keep_ratios: list[float], block_size: int, border: int,
                              path: Path) -> None:
    """Draw the histogram of feature values with the cut-offs implied by each keep ratio."""
    values = features.ravel()
    magnitudes = np.abs(values)
    _, block_cutoffs = mode_cutoffs(features, "global", keep_ratios, block_size, border)
    colors = _colors(len(keep_ratios))

    figure = Figure(figsize=(8, 4.5))
    axes = figure.add_subplot()
    axes.hist(values, bins=120, color="0.6", log=True)
    for color, keep in zip(colors, keep_ratios):
        element_cutoff = float(np.quantile(magnitudes, 1 - keep))
        block_rms = float(np.sqrt(block_cutoffs[keep] / (block_size * block_size)))
        axes.axvline(element_cutoff, color=color, linestyle="-", label=f"keep {keep:g}: element top-k |value|")
        axes.axvline(block_rms, color=color, linestyle="--", label=f"keep {keep:g}: RMS of weakest kept block")
    zero_share = float(np.mean(values == 0))
    axes.set_title(f"Feature values of {features.shape[0]} maps ({100 * zero_share:.0f}% exactly zero); "
                   f"blocks {block_size}x{block_size}, global", fontsize=9)
    axes.set_xlabel("feature value")
    axes.set_ylabel("count (log)")
    axes.legend(fontsize=6, ncol=2)
    figure.tight_layout()
    save_figure(figure, path)


def plot_block_energy(features: np.ndarray, modes: list[str], keep_ratios: list[float], block_size: int,
                      border: int, path: Path) -> None:
    """Draw, per mode, the distribution of selection scores with each keep ratio's cut-off."""
    colors = _colors(len(keep_ratios))
    figure = Figure(figsize=(4.2 * len(modes), 4))
    for index, mode in enumerate(modes):
        axes = figure.add_subplot(1, len(modes), index + 1)
        scores, cutoffs = mode_cutoffs(features, mode, keep_ratios, block_size, border)
        axes.hist(scores[scores > 0], bins=log_bins(scores), color="0.6")
        for color, keep in zip(colors, keep_ratios):
            axes.axvline(cutoffs[keep], color=color, linestyle="--", label=f"keep {keep:g}")
        axes.set_xscale("log")
        axes.xaxis.set_minor_formatter(NullFormatter())
        zero_share = float(np.mean(scores == 0))
        score_name = "energy summed over channels" if mode == "region-wise" else "block energy"
        axes.set_title(f"{mode}: {score_name}\n({100 * zero_share:.0f}% zero, not shown)", fontsize=9)
        axes.set_xlabel("sum of squares")
        axes.set_ylabel("count")
        axes.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)


def plot_feature_maps(feature_map: np.ndarray, modes: list[str], keep_ratios: list[float], block_size: int,
                      bits: int, border: int, pixels: int, path: Path) -> None:
    """Draw the strongest channels of one map, original and decoded at each keep ratio, per mode."""
    ratios = sorted(keep_ratios, reverse=True)
    energy = (feature_map.astype(np.float64) ** 2).sum(axis=(1, 2))
    channels = np.argsort(-energy, kind="stable")[:SHOWN_CHANNELS]
    rows = len(modes) * len(channels)
    columns = 1 + len(ratios)

    figure = Figure(figsize=(1.7 * columns, 1.7 * rows + 0.4))
    for mode_index, mode in enumerate(modes):
        decoded = {}
        for keep in ratios:
            config = CodecConfig(mode=mode, keep_ratio=keep, block_size=block_size, bits=bits, border=border)
            data = encode(feature_map, config)
            decoded[keep] = (decode(data), 8 * len(data) / pixels)
        for channel_index, channel in enumerate(channels):
            row = mode_index * len(channels) + channel_index
            low, high = float(feature_map[channel].min()), float(feature_map[channel].max())
            panels = [("original", feature_map[channel])]
            panels += [(f"keep {keep:g}\n{bpp:.2f} BPP", maps[channel]) for keep, (maps, bpp) in decoded.items()]
            for column, (title, image) in enumerate(panels):
                axes = figure.add_subplot(rows, columns, row * columns + column + 1)
                axes.imshow(image, cmap="viridis", vmin=low, vmax=high, interpolation="nearest")
                axes.set_xticks([])
                axes.set_yticks([])
                if channel_index == 0:
                    axes.set_title(title, fontsize=7)
                if column == 0:
                    axes.set_ylabel(f"{mode}\nchannel {channel}", fontsize=7)
    figure.suptitle(f"Decoded feature maps, blocks {block_size}x{block_size}, {bits} bits", fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


def plot_accuracy_vs_compression(document: dict[str, Any], path: Path) -> None:
    """Draw accuracy against real BPP for every setting group and baseline, on a log BPP axis."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for record in document["records"]:
        groups[(record["mode"], record["block_size"], record["bits"])].append(record)

    figure = Figure(figsize=(8.5, 5.5))
    axes = figure.add_subplot()
    colors = _colors(len(groups))
    for color, ((mode, block_size, bits), records) in zip(colors, sorted(groups.items())):
        records = sorted(records, key=lambda record: record["bpp_mean"])
        label = f"{mode} B{block_size} {bits}-bit"
        axes.plot([r["bpp_mean"] for r in records], [100 * r["accuracy"] for r in records], "o-", color=color,
                  label=label)
        tuned = [r for r in records if r.get("accuracy_finetuned") is not None]
        if tuned:
            x = [(r["finetuned_codec"] or r)["bpp_mean"] for r in tuned]
            axes.plot(x, [100 * r["accuracy_finetuned"] for r in tuned], "s--", color=color,
                      label=f"{label}, fine-tuned")

    baselines = document.get("baselines") or {}
    _plot_baselines(axes, baselines)
    axes.set_xscale("log")
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.ticklabel_format(axis="y", useOffset=False)
    low, high = axes.get_ylim()
    axes.set_ylim(max(0.0, min(low, high - 10) - 2), min(100.0, high + 2))
    axes.set_xlabel("bits per input pixel (real bitstream, mean)")
    axes.set_ylabel("top-1 accuracy (%)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    save_figure(figure, path)


def _plot_baselines(axes: Any, baselines: dict[str, Any]) -> None:
    coded = baselines.get("input_coding", [])
    styles = {"jpeg": ("k", "^"), "webp": ("0.45", "v")}
    for image_format, (color, marker) in styles.items():
        points = sorted((r for r in coded if r["format"] == image_format), key=lambda r: r["bpp_mean"])
        if not points:
            continue
        accuracies = [100 * r["accuracy"] for r in points]
        axes.plot([r["bpp_mean"] for r in points], accuracies, marker=marker, linestyle="-", color=color,
                  label=f"{image_format.upper()} of the input (file)")
        if points[0].get("payload_bpp_mean") is not None:
            axes.plot([r["payload_bpp_mean"] for r in points], accuracies, marker=marker, linestyle=":",
                      color=color, fillstyle="none", label=f"{image_format.upper()} without tables")
    split = baselines.get("uncompressed_split")
    if split:
        axes.plot([split["bpp"]], [100 * split["accuracy"]], "*", color="tab:red", markersize=12,
                  label="split, float32 features")
    whole = baselines.get("whole_model")
    if whole:
        axes.axhline(100 * whole["accuracy"], color="tab:red", linestyle=":", label="whole model")


def _colors(count: int) -> list[str]:
    return [f"C{index % 10}" for index in range(count)]


def write_figures(out_dir: Path, document: dict[str, Any], features: np.ndarray, pixels: int) -> list[Path]:
    """Write the four figures for the records of ``document`` and return their paths.

    ``features`` is an N x C x H x W sample of the base model's head output
    on test images. The first map is the one shown decoded.
    """
    records = document["records"]
    modes = [mode for mode in document["config"]["grid"]["modes"] if any(r["mode"] == mode for r in records)]
    modes = modes or list(document["config"]["grid"]["modes"])
    keep_ratios = sorted({record["keep_ratio"] for record in records} or set(document["config"]["grid"]["keep_ratios"]),
                         reverse=True)
    block_size = document["config"]["grid"]["block_sizes"][0]
    bits = max(document["config"]["grid"]["bits"])
    border = document["config"]["border"]

    paths = [out_dir / name for name in FIGURE_NAMES]
    plot_feature_distribution(features, keep_ratios, block_size, border, paths[0])
    plot_block_energy(features, modes, keep_ratios, block_size, border, paths[1])
    plot_feature_maps(features[0], modes, keep_ratios, block_size, bits, border, pixels, paths[2])
    plot_accuracy_vs_compression(document, paths[3])
    return paths
