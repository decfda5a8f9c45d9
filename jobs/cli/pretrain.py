"""`lwaffect pretrain`: fine-tune the backbone on an AffectNet folder; the file loads with --backbone-weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from jobs.cli.app import _fails_with_1, _say, app
from jobs.cli.options import Seed, Threads

VaLossName = Literal["ccc", "mse"]  # jobs.pretrain.config.VA_LOSSES


@app.command()
def pretrain(
    input: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            help="AffectNet folder: original layout (Manually_Annotated_Images/ "
            "with training.csv, validation.csv) or cropped (train_set/, val_set/).",
        ),
    ],  # fmt: skip
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Backbone weights file to write (.safetensors).")
    ],
    backbone_weights: Annotated[
        Path | None,
        typer.Option(help="Weights file to start from (default: random weights, or --pretrained)."),
    ] = None,
    pretrained: Annotated[
        bool, typer.Option("--pretrained", help="Start from timm's hub weights (needs the Hugging Face hub).")
    ] = False,
    backbone: Annotated[str, typer.Option(help="timm model name.")] = "mobilenetv4_conv_small",
    input_size: Annotated[
        int, typer.Option(help="Side of the face image in pixels (the seed's: 112).")
    ] = 112,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs in all (a rerun goes on up to this many).")] = 10,
    batch_size: Annotated[int, typer.Option(min=2, help="Images per step.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak AdamW learning rate (warm-up, cosine decay).")] = 1e-3,
    va_loss: Annotated[
        VaLossName, typer.Option(help="Valence / arousal loss: ccc (1 - CCC) or mse.")
    ] = "ccc",
    jitter: Annotated[
        float, typer.Option(help="Random scale / shift fraction (rotation 100x degrees).")
    ] = 0.1,
    color_jitter: Annotated[
        float, typer.Option(help="Random brightness / contrast fraction (0: off).")
    ] = 0.0,
    workers: Annotated[int, typer.Option(min=0, help="Image-loading processes (0: none).")] = 2,
    state: Annotated[
        Path | None, typer.Option(help="Resume state and log.jsonl folder (default: OUTPUT.pretrain/).")
    ] = None,
    seed: Seed = 0,
    threads: Threads = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
) -> None:
    """Fine-tune MobileNetV4 on AffectNet (8 expressions, class-weighted, and valence / arousal).

    Validation accuracy, macro F1 and CCC are printed and logged (STATE/log.jsonl) each epoch; a rerun
    goes on from the last finished epoch. The output holds the backbone of the best epoch (by macro F1)
    with its normalisation and input size; pass it to `lwaffect extract --backbone-weights`.
    """
    from jobs.pretrain.config import PretrainConfig, PretrainError
    from model.weights import BackboneWeightsError
    from pipeline.datasets.affectnet import AffectNetError

    cfg = PretrainConfig(input=input, output=output, state=state, name=backbone, backbone_weights=backbone_weights,
                         pretrained=pretrained, input_size=input_size, epochs=epochs, batch_size=batch_size, lr=lr,
                         va_loss=va_loss, jitter=jitter, color_jitter=color_jitter, workers=workers, seed=seed,
                         threads=threads, device=device)  # fmt: skip
    with _fails_with_1("pretrain", PretrainError, AffectNetError, BackboneWeightsError):
        from jobs.pretrain.driver import pretrain as run_pretrain

        result = run_pretrain(cfg, say=_say)
    best = result.best
    typer.echo(f"{result.output}: epoch {result.best_epoch} of {result.epochs}, validation accuracy "
               f"{best.get('accuracy', float('nan')):.4f}, macro F1 {best.get('macro_f1', float('nan')):.4f}, "
               f"CCC valence {best.get('ccc_valence', float('nan')):.4f} arousal "
               f"{best.get('ccc_arousal', float('nan')):.4f} ({result.seconds:.1f} s)")  # fmt: skip
