"""Checkpoints in safetensors, with the config that built them, written atomically.

A checkpoint is one `.safetensors` file whose metadata holds `kind` (what it is, e.g. "world_model") and
`config` (the dataclass as JSON). Loading checks both and names the difference when they do not match.

Two smaller copies of a checkpoint: `save_half` (fp16) and `save_int8` (blockwise absmax int8, a quarter of fp32):
the shipped student and the campaign's continuation checkpoints are int8 (the GPU machine's 64 MiB carry holds the
tree, the packages and that state; the wheel stays small). `load` reads all three back as floating-point tensors.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import safe_open
from safetensors.torch import save_file

C = TypeVar("C")


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call write(tmp_path) then rename onto `path`: a crash never leaves a half-written file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; checkpoints are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy `src` to `dst` through atomic_write."""
    return atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def save(path: str | os.PathLike, tensors: dict[str, torch.Tensor], kind: str, config: Any = None,
         extra: dict[str, str] | None = None) -> Path:
    """Save tensors with their kind and config (a dataclass) in the metadata, atomically."""
    meta = {"kind": kind, "config": json.dumps(dataclasses.asdict(config)) if config is not None else "null"}
    meta.update(extra or {})
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(flat, tmp, metadata=meta))


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train one first or pass the path of an existing file.")
    try:
        with safe_open(str(path), "pt") as f:
            return dict(f.metadata() or {})
    except Exception as err:  # safetensors raises its own error types for truncated/corrupt headers
        raise ValueError(f"{path} is not a readable safetensors checkpoint ({err}); re-save or re-download it.") from err


def load_config(path: str | os.PathLike, kind: str, config_type: type[C]) -> C:
    """The config a checkpoint was built with, checked for its kind, without reading the tensors."""
    return _config(path, read_metadata(path), kind, config_type)


def _config(path: str | os.PathLike, meta: dict[str, str], kind: str, config_type: type[C] | None) -> C | None:
    if meta.get("kind") != kind:
        raise ValueError(f"{path} holds a {meta.get('kind')!r} checkpoint, not a {kind!r}; pass the right file.")
    cfg = None
    if config_type is not None:
        try:
            raw = json.loads(meta.get("config", "null"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} carries a damaged config ({err}); re-save or re-download it.") from err
        if raw is None:
            raise ValueError(f"{path} carries no config: it is damaged or was not written by relickit.checkpoint.save; "
                             "re-save or re-download it.")
        try:
            cfg = config_from_dict(config_type, raw)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path} carries a config this relickit cannot build ({err}); re-save or re-download "
                             "it, or upgrade relickit if a newer one wrote it.") from err
    return cfg


def config_differences(theirs: Any, mine: Any) -> dict[str, tuple[Any, Any]]:
    """{field: (theirs, mine)} for every field where two configs of one dataclass differ: what an error names."""
    return {f.name: (getattr(theirs, f.name), getattr(mine, f.name)) for f in dataclasses.fields(mine)
            if getattr(theirs, f.name) != getattr(mine, f.name)}


def load(path: str | os.PathLike, kind: str, config_type: type[C] | None = None,
         expect: C | None = None) -> tuple[dict[str, torch.Tensor], C | None, dict[str, str]]:
    """Load tensors, check the kind, rebuild the config; with `expect`, refuse a checkpoint of another config."""
    meta = read_metadata(path)
    cfg = _config(path, meta, kind, config_type)
    if cfg is not None and expect is not None and cfg != expect:
        raise ValueError(
            f"{path} was trained with another config; differences (checkpoint, expected): "
            f"{config_differences(cfg, expect)}. "
            "Build the model from the checkpoint's own config (e.g. WorldModel.load(path)) or pick a matching file."
        )
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except Exception as err:
        raise ValueError(f"{path} is truncated or corrupt ({err}); re-save or re-download it.") from err
    # safetensors keeps no checksum: a damaged byte in the data goes unseen unless it makes a NaN or an inf
    if meta.get(QUANTIZED) == INT8:
        tensors = dequantize_int8(tensors)
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"{path} holds NaN or inf in {bad[:3]}: the file is corrupt or was saved from a diverged "
                         "run; re-save or re-download it, or load an earlier checkpoint.")
    return tensors, cfg, meta


def load_into(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """module.load_state_dict(tensors), with weights that do not fit the module named as a damaged file."""
    try:
        module.load_state_dict(tensors)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"the weights in {path} do not fit the config stored with them ({first} ...): the file is "
                         "damaged or was edited; re-save or re-download it.") from err


def config_from_dict(config_type: type[C], raw: dict[str, Any]) -> C:
    """Rebuild a (possibly nested) frozen dataclass from its asdict() form, restoring tuples."""
    kwargs = {}
    for f in dataclasses.fields(config_type):  # type: ignore[arg-type]
        if f.name not in raw:
            continue
        v = raw[f.name]
        ftype = f.type if not isinstance(f.type, str) else f.type
        if dataclasses.is_dataclass(f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default) and isinstance(v, dict):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            v = config_from_dict(type(default), v)
        elif isinstance(v, list) and "tuple" in str(ftype):
            v = tuple(v)
        kwargs[f.name] = v
    unknown = set(raw) - {f.name for f in dataclasses.fields(config_type)}  # type: ignore[arg-type]
    if unknown:
        raise ValueError(f"config has fields {sorted(unknown)} unknown to {config_type.__name__}; upgrade relickit.")
    return config_type(**kwargs)


def save_config(path: str | os.PathLike, config: Any) -> Path:
    """A config (a dataclass) as JSON beside a run's checkpoints, atomically: what rebuilds the run's model."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(dataclasses.asdict(config))))


def read_config(path: str | os.PathLike, config_type: type[C]) -> C:
    """The config `save_config` wrote."""
    return config_from_dict(config_type, json.loads(Path(path).read_text()))


def save_half(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a checkpoint with its floating-point tensors in fp16 (half the size; loads into fp32 models)."""
    from safetensors.torch import load_file

    meta = read_metadata(src)
    tensors = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(src)).items()}
    return atomic_write(dst, lambda tmp: save_file(tensors, tmp, metadata=meta))


QUANTIZED = "quantized"  # the metadata key save_int8 sets
INT8 = "int8-absmax"
INT8_BLOCK = 64  # values sharing one fp16 scale: 1/32 byte of scale per value
SCALE = ".int8_scale"  # suffix of a quantized tensor's scales


def quantize_int8(x: torch.Tensor, block: int = INT8_BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values of x's shape, fp16 scale per block of `block` consecutive values): x ~ q * scale, each value off
    by at most half its block's absmax / 127. x.numel() must be a multiple of `block`."""
    rows = x.detach().float().reshape(-1, block)
    scale = (rows.abs().amax(1, keepdim=True) / 127).half().float()  # the stored fp16 scale, used to round
    q = torch.where(scale > 0, rows / scale.clamp_min(torch.finfo(torch.float32).tiny), 0).round().clamp(-127, 127)
    return q.to(torch.int8).reshape(x.shape), scale.squeeze(1).half()


def dequantize_int8(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The floating-point tensors of a save_int8 checkpoint's contents (fp32 where quantized, as stored elsewhere)."""
    out = {}
    for k, v in tensors.items():
        if k.endswith(SCALE):
            continue
        scale = tensors.get(k + SCALE)
        if scale is not None:
            v = (v.float().reshape(scale.numel(), -1) * scale.float()[:, None]).reshape(v.shape)
        out[k] = v
    return out


def save_int8(src: str | os.PathLike, dst: str | os.PathLike, block: int = INT8_BLOCK) -> Path:
    """Copy a checkpoint with its weight matrices in blockwise absmax int8 (`block` values per fp16 scale) and its
    other floating-point tensors (biases, norms, tensors not a multiple of `block`) in fp16: about a quarter of
    fp32. The weights move by at most 1/254 of their block's largest value, less than a few optimizer steps change
    them; 3 s of play from the int8 copy of the shipped student stay within 55 dB PSNR of the fp16 one's, where
    another seed is 25 dB away (docs/model_card.md). `load` dequantizes it."""
    from safetensors.torch import load_file

    meta = read_metadata(src)
    if meta.get(QUANTIZED):
        raise ValueError(f"{src} is already quantized ({meta[QUANTIZED]}); save_int8 the full-precision checkpoint.")
    tensors = {}
    for k, v in load_file(str(src)).items():
        if v.is_floating_point() and v.dim() >= 2 and v.numel() % block == 0:
            tensors[k], tensors[k + SCALE] = quantize_int8(v, block)
        else:
            tensors[k] = v.half() if v.is_floating_point() else v
    meta = {**meta, QUANTIZED: INT8}
    return atomic_write(dst, lambda tmp: save_file(tensors, tmp, metadata=meta))
