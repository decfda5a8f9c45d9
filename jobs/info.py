"""`lwaffect info`: the registered model configs and tasks, or the facts of one config on one task; and, per
number of trainable backbone blocks N, what the cache stores and what trains."""

from __future__ import annotations

from model.tasks import TASKS


def registry_text() -> str:
    """The registered model configs and the tasks, one line each."""
    from model.configs import MODEL_CONFIGS

    lines = ["model configs:"]
    wide = max(len(name) for name in MODEL_CONFIGS)
    for name, cfg in MODEL_CONFIGS.items():
        maps = "+".join(("28x28", "14x14", "7x7")[level.source] for level in cfg.levels)
        width = sum(level.dim for level in cfg.levels)
        lines.append(
            f"  {name:<{wide}} {cfg.description} (maps {maps}, features {width}, window {cfg.num_frames})"
        )
    lines.append("tasks:")
    for name, task in TASKS.items():
        lines.append(
            f"  {name:<5} {task.unit:<5} {task.outputs:>2} outputs, {task.activation:<7} metric: {task.metric}"
        )
    return "\n".join(lines)


def facts_text(config: str, task: str, trainable_blocks: int = 2, input_size: int = 224) -> str:
    """The facts table of model `config` on `task` (random-init backbone: the figures do not depend on it)."""
    from model.backbone import BackboneConfig, build_backbone
    from model.configs import build_model
    from model.facts import facts_table, model_facts

    backbone = build_backbone(BackboneConfig(trainable_blocks=trainable_blocks, input_size=input_size))
    return facts_table(model_facts(build_model(config, task, backbone=backbone), backbone))


def blocks_rows(config: str = "tam_s1", task: str = "va", input_size: int = 224) -> list[dict]:
    """Per N from 0 to the number of blocks: the cached maps, their bytes per frame (float16, the cache's
    dtype), the parameters of the N trainable blocks, and those the model `config` on `task` trains (the
    blocks it runs, its TAM and head)."""
    import torch

    from model.backbone import BackboneConfig, build_backbone
    from model.configs import build_model
    from model.facts import boundary_bytes

    rows, n, blocks = [], 0, None
    while blocks is None or n <= blocks:
        backbone = build_backbone(BackboneConfig(trainable_blocks=n, input_size=input_size))
        blocks = backbone.split.blocks
        model = build_model(config, task, backbone=backbone)
        maps = ", ".join(
            f"{name} {'x'.join(map(str, shape))}"
            for name, shape in zip(backbone.cached_names, backbone.cached_shapes, strict=True)
        )
        rows.append({
            "trainable_blocks": n,
            "cached": maps,
            "bytes_per_frame": boundary_bytes(backbone.cached_shapes, torch.float16),
            "block_params": sum(p.numel() for p in backbone.tail.parameters()),
            "model_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        })  # fmt: skip
        n += 1
    return rows


def blocks_text(config: str = "tam_s1", task: str = "va", input_size: int = 224) -> str:
    """`blocks_rows` as a table."""
    rows = blocks_rows(config, task, input_size)
    head = (
        "N",
        "cached maps (C x H x W)",
        "cache bytes/frame",
        "block params",
        f"trained ({config}, {task})",
    )
    cells = [(str(r["trainable_blocks"]), r["cached"], f"{r['bytes_per_frame']:,}", f"{r['block_params']:,}",
              f"{r['model_params']:,}") for r in rows]  # fmt: skip
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]
    lines = [f"trainable backbone blocks at {input_size} px (cache float16; --trainable-blocks N):"]
    for c in [head, *cells]:
        lines.append(
            "  "
            + "  ".join(
                v.rjust(w) if i != 1 else v.ljust(w) for i, (v, w) in enumerate(zip(c, widths, strict=True))
            )
        )
    return "\n".join(lines)
