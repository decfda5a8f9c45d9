"""`lwaffect synth`, `bench`, `info`: synthetic data, throughput measurements and model facts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobs.cli.app import _fails_with_1, _say, app
from jobs.cli.options import (
    AffectNetFormatName,
    DeviceName,
    InputSize,
    Layout,
    Resolution,
    TaskName,
    TrainableBlocks,
)


@app.command()
def synth(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the data set into.")],
    layout: Layout = "affwild2",
    videos: Annotated[
        int | None, typer.Option(help="Number of videos (default: 8 affwild2, 9 emi, 8 ah).")
    ] = None,
    seconds: Annotated[
        float | None, typer.Option(help="Seconds per video (default: 3 affwild2, 2 emi and ah).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed makes the same data set.")] = 0,
    variants: Annotated[
        str | None,
        typer.Option(
            help="Hard videos to add as validation videos (affwild2 layout), comma-separated: low_contrast, "
            "dark, small (1080p), fast (60 fps, motion blur), occluded, profile, crossing (two people), "
            "edge (cut by the frame's edge, then leaving it), tiny (1080p wide shot, faces of 32-54 px); or "
            "all. --videos 0 makes only these."
        ),
    ] = None,
    hard: Annotated[bool, typer.Option("--hard", help="Add every hard video (--variants all).")] = False,
    identities: Annotated[int, typer.Option(min=1, help="People made from the one photo.")] = 1,
    rotation: Annotated[
        int,
        typer.Option(
            help="Display rotation of every video in degrees counterclockwise (0, 90, 180, -90): the frames "
            "are stored turned back, as a phone stores a portrait video (-90)."
        ),
    ] = 0,
    images: Annotated[
        int, typer.Option(help="affectnet layout: images in all, a quarter of them validation.")
    ] = 400,
    image_size: Annotated[
        int, typer.Option(help="affectnet layout: side of the images (original) or face crops (cropped).")
    ] = 160,
    affectnet_format: Annotated[
        AffectNetFormatName,
        typer.Option(
            help="affectnet layout: original (Manually_Annotated_Images/, training.csv, "
            "validation.csv) or cropped (train_set/, val_set/ with .npy annotations)."
        ),
    ] = "original",  # fmt: skip
) -> None:
    """Make a synthetic data set of real H.264 videos of a real face, with labels and true face boxes;
    or, with --layout affectnet, still face images in an AffectNet layout for `lwaffect pretrain`."""
    import json
    import time

    from pipeline.synth.common import SynthConfig
    from pipeline.synth.dataset import make_dataset
    from pipeline.synth.hard import parse_variants

    with _fails_with_1("synth", ValueError):
        chosen = parse_variants("all" if hard else variants or "")
        cfg = SynthConfig(output=output, layout=layout, videos=videos, seconds=seconds, seed=seed,
                          variants=chosen, identities=identities, rotation=rotation, images=images,
                          image_size=image_size, affectnet_format=affectnet_format)  # fmt: skip
        cfg.check()
    start = time.perf_counter()
    manifest_path = make_dataset(cfg, say=lambda line: typer.echo(f"  {line}"))
    manifest = json.loads(manifest_path.read_text())
    if layout == "affectnet":
        typer.echo(f"wrote {sum(manifest['images'].values())} images ({affectnet_format} AffectNet layout) to "
                   f"{output} in {time.perf_counter() - start:.1f} s")  # fmt: skip
        for split, classes in manifest["classes"].items():
            typer.echo(f"  {split}: " + ", ".join(f"{name} {n}" for name, n in classes.items()))
        return
    frames = sum(v["frames"] for v in manifest["videos"])
    typer.echo(
        f"wrote {len(manifest['videos'])} videos, {frames:,} frames, {len(manifest['subjects'])} subjects "
        f"({layout} layout) to {output} in {time.perf_counter() - start:.1f} s"
    )
    typer.echo(f"manifest: {manifest_path}; true face boxes: {output / manifest['truth']}/")
    try:  # the catalogue as the data set adapters read it
        from pipeline.datasets import load_catalogue
        from pipeline.datasets.summary import format_summary
    except ImportError:
        return
    try:
        typer.echo("\n" + format_summary(load_catalogue(output, layout)))
    except ValueError as e:
        typer.echo(f"lwaffect synth: the catalogue of {output} could not be read: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def bench(
    videos: Annotated[int, typer.Option(min=1, help="Synthetic videos to make and measure.")] = 2,
    resolution: Resolution = "720p",
    seconds: Annotated[float, typer.Option(min=0.1, help="Length of each video in seconds.")] = 10.0,
    device: Annotated[DeviceName, typer.Option(help="Where the models run: cpu or cuda.")] = "cpu",
    face_device: Annotated[
        DeviceName, typer.Option(help="Where the face detector runs; cuda: on the backbone's GPU.")
    ] = "cpu",
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for bench.json and bench.md.")
    ] = Path("bench-out"),
    repeats: Annotated[
        int,
        typer.Option(
            min=1,
            help="Runs of each short stage, of the naive loop and of the extract command (the median is reported).",
        ),
    ] = 3,
    memory_seconds: Annotated[
        float, typer.Option(min=0.0, help="Short video of the memory test (the long one is 10x); 0 skips it.")
    ] = 6.0,
    naive_frames: Annotated[int, typer.Option(min=1, help="Frames per video through the naive loop.")] = 20,
    hard_variants: Annotated[
        str,
        typer.Option(
            help="Hard set beside the default videos, one video per variant, comma-separated: low_contrast, "
            "dark, small, fast, occluded, profile, crossing, edge, tiny; all, or none to skip it."
        ),
    ] = "all",
    hard_seconds: Annotated[float, typer.Option(min=0.5, help="Length of each hard video in seconds.")] = 3.0,
    face_methods: Annotated[
        str,
        typer.Option(
            help="Face stage methods compared on both sets, comma-separated names of "
            "jobs.bench.faces.FACE_METHODS (today: whole-frame detection at every sample, the face stage "
            "before refinement; refine: faces followed by refinement, the pipeline's settings; "
            "full_every_frame: MTCNN on every full-resolution frame, slow)."
        ),
    ] = "today,refine",
) -> None:
    """Per-stage and end-to-end throughput, memory and cache size against a naive per-frame loop.

    Makes its own synthetic videos (a default set and a hard set); writes OUTPUT/bench.json and
    OUTPUT/bench.md and prints the tables. The face stage of each method is scored per subject against the
    true boxes: found where that subject's box has IoU >= 0.5 with its true box, median IoU, boxes on
    frames without a face, identity switches; and timed in worker ms per frame, per set and per video.
    Each run of the extract command is compared with the naive loop's passes timed just before and after it.
    """
    from jobs.bench.faces import parse_methods
    from jobs.bench.report import markdown
    from jobs.bench.suite import BenchConfig, run_bench
    from jobs.extract.runtime import RuntimeConfig
    from pipeline.synth.hard import parse_variants

    with _fails_with_1("bench", ValueError):
        cfg = BenchConfig(output=output, videos=videos, resolution=resolution, seconds=seconds, device=device,
                          repeats=repeats, memory_seconds=memory_seconds, naive_frames=naive_frames,
                          hard_variants=parse_variants(hard_variants), hard_seconds=hard_seconds,
                          face_methods=parse_methods(face_methods),
                          runtime=RuntimeConfig(face_device=face_device))  # fmt: skip
    figures = run_bench(cfg, say=_say)
    typer.echo(markdown(figures))
    typer.echo(f"\nwritten: {output / 'bench.json'}, {output / 'bench.md'}", err=True)


@app.command()
def info(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model config to describe, e.g. tam_s1.")
    ] = None,
    task: Annotated[
        TaskName | None, typer.Option("--task", "-t", help="Task of the described model.")
    ] = None,
    trainable_blocks: TrainableBlocks = 2,
    input_size: InputSize = 224,
) -> None:
    """Registered model configs and tasks; parameters, GFLOPs and cached bytes per frame of one; and per
    number of trainable backbone blocks (0-5), the cache's bytes per frame and the parameters trained."""
    from jobs.info import blocks_text, facts_text, registry_text

    if model is None and task is None:
        typer.echo(registry_text())
        typer.echo(blocks_text(input_size=input_size))
        return
    if model is None or task is None:
        typer.echo("lwaffect info: give both --model NAME and --task T (or neither to list them)", err=True)
        raise typer.Exit(1)
    with _fails_with_1("info", ValueError):
        typer.echo(facts_text(model, task, trainable_blocks, input_size))
        typer.echo(blocks_text(model, task, input_size))
