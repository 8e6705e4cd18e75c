"""``summary.md``: the sweep's results as Markdown tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def percent(value: float | None) -> str:
    """Format a 0..1 fraction as a percentage with two decimals, or a dash for None."""
    return "-" if value is None else f"{100 * value:.2f}"


def number(value: float | None, digits: int = 3) -> str:
    """Format a number with ``digits`` decimals, or a dash for None."""
    return "-" if value is None else f"{value:.{digits}f}"


def kibibytes(value: int | None) -> str:
    """Format a byte count in KiB, or a dash for None."""
    return "-" if value is None else f"{value / 1024:.0f}"


def settings_table(records: list[dict[str, Any]]) -> list[str]:
    """Return the Markdown lines of the per-setting table."""
    lines = [
        "| mode | keep | block | bits | accuracy % | fine-tuned % | BPP mean | p50 | p95 | bound BPP | zstd-19 BPP "
        "| vs float32 | vs RGB | encode ms | decode ms | edge peak KiB | server peak KiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for record in records:
        tuned = record.get("finetuned_codec")
        bpp = number(record["bpp_mean"])
        if tuned:
            bpp += f" ({number(tuned['bpp_mean'])} tuned)"
        timing = record["timing"]
        memory = record["memory"]
        lines.append(
            f"| {record['mode']} | {record['keep_ratio']:g} | {record['block_size']} | {record['bits']} "
            f"| {percent(record['accuracy'])} | {percent(record.get('accuracy_finetuned'))} | {bpp} "
            f"| {number(record['bpp_p50'])} | {number(record['bpp_p95'])} | {number(record['bound_bpp_mean'])} "
            f"| {number(record['zstd19_bpp_mean'])} | {record['compression_ratio_float32']:.1f} "
            f"| {record['compression_ratio_rgb']:.2f} | {number(timing['encode_ms_mean'], 2)} "
            f"| {number(timing['decode_ms_mean'], 2)} | {kibibytes(memory['edge_peak_rss_rise_bytes'])} "
            f"| {kibibytes(memory['server_peak_rss_rise_bytes'])} |"
        )
    return lines


def baselines_table(baselines: dict[str, Any]) -> list[str]:
    """Return the Markdown lines of the baselines table."""
    lines = ["| baseline | accuracy % | BPP mean | BPP without tables |", "| --- | --- | --- | --- |"]
    whole = baselines["whole_model"]
    split = baselines["uncompressed_split"]
    lines.append(f"| whole model, original images | {percent(whole['accuracy'])} | - | - |")
    lines.append(f"| split, float32 features | {percent(split['accuracy'])} | {split['bpp']:.1f} | - |")
    for row in baselines["input_coding"]:
        payload = number(row["payload_bpp_mean"]) if row["payload_bpp_mean"] is not None else "-"
        lines.append(
            f"| {row['format'].upper()} quality {row['quality']} | {percent(row['accuracy'])} "
            f"| {number(row['bpp_mean'])} | {payload} |"
        )
    return lines


def write_summary(document: dict[str, Any], path: Path) -> None:
    """Write ``summary.md`` for a results document."""
    config = document["config"]
    provenance = document["provenance"]
    commit = provenance.get("git_commit") or "unknown"
    if provenance.get("git_dirty"):
        commit += " (with uncommitted changes)"
    finetune = config["finetune"]
    if finetune["steps"]:
        tuning = (f"fine-tuning: {finetune['trained']}, up to {finetune['steps']} {finetune['optimizer']} steps "
                  f"at batch {finetune['batch_size']}, lr {finetune['lr']:g}, {finetune['scheduler']} schedule, "
                  f"{config['val_images']} validation images")
    else:
        tuning = "no fine-tuning"

    lines = [
        "# Compression sweep",
        "",
        f"Checkpoint `{config['checkpoint']}` (fingerprint `{config['checkpoint_fingerprint'][:12]}`), split after "
        f"`{config['split']}`, features {'x'.join(str(side) for side in config['feature_shape'])}, "
        f"{config['test_images']} test images of `{config['data']}`, seed {config['seed']}, {tuning}. "
        f"Commit {commit}.",
        "",
        "BPP is the serialized bitstream's bits per input pixel, headers and tables included. "
        "Ratios divide the float32 feature map (vs float32) or the 24-bit RGB image (vs RGB) by the bitstream. "
        "Times are per image on one map; peak memory is the rise of the peak RSS during the step, at batch 1.",
        "",
        *settings_table(document["records"]),
        "",
    ]
    if document.get("baselines"):
        lines += ["## Baselines", "", *baselines_table(document["baselines"]), ""]
    path.write_text("\n".join(lines), encoding="utf-8")
