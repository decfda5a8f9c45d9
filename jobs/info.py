"""`lwaffect info`: the registered model configs and tasks, or the facts of one config on one task."""

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


def facts_text(config: str, task: str) -> str:
    """The facts table of model `config` on `task` (random-init backbone: the figures do not depend on it)."""
    from model.backbone import BackboneConfig, build_backbone
    from model.configs import build_model
    from model.facts import facts_table, model_facts

    backbone = build_backbone(BackboneConfig())
    return facts_table(model_facts(build_model(config, task, backbone=backbone), backbone))
