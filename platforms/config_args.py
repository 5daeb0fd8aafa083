"""One `AcceleratorConfig` from a JSON file and ``key=value`` overrides (the CLI's
``--config FILE`` / ``--param key=value``).

Why: `generate`, `synth`, `vivado` and `sweep` all take the same parameters; one parser
means one spelling and one error message for each mistake. Values are JSON (``num_pe=8``,
``procedures=["MXV_SP"]``) or, for convenience, plain words: ``fmt`` accepts the
shorthands ``bf16``/``bfloat16`` (fp32 accumulation), ``bf16acc`` (bf16 accumulation),
``fixed``/``q8.8``/``qI.F``; ``procedures`` accepts a comma list.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from reneta_hw.config import AcceleratorConfig, ConfigError

__all__ = ["resolve_config", "parse_params", "FMT_SHORTHANDS"]

FMT_SHORTHANDS = {
    "bf16": {"kind": "bfloat16", "accumulate": "fp32"},
    "bfloat16": {"kind": "bfloat16", "accumulate": "fp32"},
    "bf16acc": {"kind": "bfloat16", "accumulate": "bf16"},
    "fixed": {"kind": "fixed"},
}


def _fmt_value(text: str):
    word = text.strip().lower()
    if word in FMT_SHORTHANDS:
        return dict(FMT_SHORTHANDS[word])
    m = re.fullmatch(r"q(\d+)\.(\d+)", word)
    if m:
        return {"kind": "fixed", "int_bits": int(m.group(1)), "frac_bits": int(m.group(2))}
    if not word.startswith("{"):
        raise ConfigError(f"--param fmt={text}: expected one of {', '.join(FMT_SHORTHANDS)}, "
                          f"qI.F (e.g. q8.8) or a JSON object like {{\"kind\": \"bfloat16\"}}")
    return text


def parse_params(items) -> dict:
    """``["num_pe=8", "fmt=bf16"]`` -> ``{"num_pe": "8", "fmt": {...}}`` (strings stay strings:
    `AcceleratorConfig.with_params` reads them as JSON)."""
    params = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--param {item!r}: expected key=value (e.g. num_pe=8)")
        if key in params:
            raise ConfigError(f"--param {key}: given twice")
        params[key] = _fmt_value(value) if key == "fmt" else value
    return params


def resolve_config(config_file: str | Path | None = None, params=()) -> AcceleratorConfig:
    """The defaults, then ``config_file`` (JSON of `AcceleratorConfig.to_json`), then
    ``params`` (``key=value`` strings or a dict); raises `ConfigError` naming the culprit."""
    base = None
    if config_file is not None:
        path = Path(config_file)
        try:
            text = path.read_text()
        except OSError as e:
            raise ConfigError(f"--config {path}: cannot read ({e.strerror or e})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--config {path}: not JSON ({e})") from None
        if isinstance(data, dict) and "config" in data and isinstance(data["config"], dict) \
                and "num_pe" not in data:
            data = data["config"]          # a summary.json / generate manifest holds it here
        try:
            base = AcceleratorConfig.from_json(data)
        except (ConfigError, TypeError, ValueError) as e:
            raise ConfigError(f"--config {path}: {e}") from None
    if isinstance(params, dict):
        params = {k: (_fmt_value(v) if k == "fmt" and isinstance(v, str) else v)
                  for k, v in params.items()}
    else:
        params = parse_params(params)
    if not params:
        return base or AcceleratorConfig()
    try:
        return AcceleratorConfig.with_params(base, **params)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"--param: {e}") from None
