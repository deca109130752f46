"""The end of a training run (train.fit): the best weights back in the model, the objective's additions
(bank, calibration, accuracy), and the model file and summary (JSON and Markdown) written."""

from __future__ import annotations

import dataclasses
import json

import torch


def finish(loop, store) -> dict:
    """Best weights, then the objective's additions (bank, calibration, accuracy); write model and summary."""
    model = loop.model
    model.load_state_dict(loop.best_state)
    model.eval()
    train_seconds = loop.elapsed()
    extras = loop.objective.finish(loop)
    model.config = dataclasses.replace(model.config, dataset=loop.data.name)
    summary = {
        "method": model.config.method,
        "dataset": loop.data.name,
        "train_images": len(loop.train_x),
        "val_images": len(loop.val_x),
        "skipped_files": list(loop.data.skipped),
        "epochs_run": loop.epoch_no,
        "best_epoch": loop.best_epoch,
        "best_val_loss": loop.best_loss,
        "stopped_early": loop.epoch_no < loop.tcfg.epochs,
        "seconds": round(loop.elapsed(), 1),
        "seconds_per_epoch": round(train_seconds / max(loop.epoch_no, 1), 2),
        **_peak_memory(loop.device),
        "device": str(loop.device),
        "train_config": loop.tcfg.to_dict(),
        "notes": list(loop.objective.notes),
        "model_config": json.loads(model.config.to_json()),
        "final": loop.history[-1] if loop.history else None,
        **extras,
    }
    store.save_model(model, {"lmppm.training": json.dumps(summary)})
    store.write_text("summary.json", json.dumps(summary | {"history": loop.history}, indent=2))
    store.write_text("summary.md", _summary_markdown(summary))
    return summary


def _peak_memory(device: torch.device) -> dict:
    """Peak GPU memory the process allocated (CUDA only), for the README's time-and-memory figures."""
    if device.type != "cuda":
        return {}
    return {"peak_gpu_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}


def _summary_markdown(s: dict) -> str:
    final = s["final"] or {"train": {}, "val": {}}
    rows = "\n".join(f"| {k} | {v:.4f} | {final['val'].get(k, float('nan')):.4f} |" for k, v in final["train"].items())
    lines = [
        f"# lmppm training run ({s['method']})",
        "",
        f"- data: `{s['dataset']}` ({s['train_images']} train / {s['val_images']} val images)",
        f"- epochs: {s['epochs_run']} (best {s['best_epoch']}, early stop: {s['stopped_early']}), {s['seconds']} s on {s['device']}",
        f"- {s['seconds_per_epoch']} s per training epoch"
        + (f", peak GPU memory {s['peak_gpu_memory_mib']} MiB" if "peak_gpu_memory_mib" in s else ""),
    ]
    if "flow" in s:
        lines.append(
            "- flow defaults: " + ", ".join(f"{k} {s['flow'][k]:.4g}" for k in ("alpha", "beta", "steps", "sigma_ker"))
        )
        t = s["top_k_kernel_mean"]
        lines.append(
            f"- top-{t['k']} kernel mean ({t['search']}): {100 * t['relative_error']:.2f}% of the kernel step from the exact one, on {t['queries']} validation latents"
        )
    if "start_step" in s:
        lines.append(f"- restoration start step: {s['start_step']} of {s['model_config']['diffusion']['steps']}")
    if "test_accuracy" in s:
        lines.append(f"- accuracy on {s['test_images']} held-out images: {100 * s['test_accuracy']:.2f}%")
    return "\n".join(lines) + f"\n\nLoss terms in the last epoch:\n\n| term | train | val |\n|---|---|---|\n{rows}\n"
