"""llama.cpp backend for GGUF language models, through llama-cpp-python's C API (the ``llm`` extra).

One context holds ``parallel`` sequences, each with ``n_ctx`` tokens of KV cache of its own, so several
requests decode together in one ``llama_decode`` call, as llama.cpp's own server does with its slots.
Everything that computes (``decode``, ``sample``, ``embed``) must be called from one thread: llama.cpp's
CPU backend starts its compute threads per call, and calls from several threads at once make them fight
over the cores. Tokenising only reads the vocabulary and may happen anywhere.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from lanai.backends.base import BackendOptions, BatchEntry, Sampling, TokenLogprob
from lanai.errors import BackendUnavailable, BadInput, ModelLoadError
from lanai.telemetry.cpus import usable_cpus
from lanai.telemetry.memory import usable_memory

try:
    import llama_cpp as _llama
except ImportError:  # pragma: no cover - depends on the extra
    _llama = None  # type: ignore[assignment]

# Sampling and BatchEntry re-exported from base
__all__ = ["LlamaCppBackend", "LlamaOptions", "Sampling", "BatchEntry", "check_options"]

log = logging.getLogger(__name__)

_DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp: pick a random seed
_FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}  # llama.cpp's LLAMA_FLASH_ATTN_TYPE_*
_WHOLE_OPTIONS = ("n_ctx", "parallel", "n_batch", "n_threads", "n_gpu_layers", "kv_cache_mb")
_MOST_SLOTS = 4
"""Sequences decoded together when ``parallel`` is not set and the KV cache's budget allows."""
_KV_SHARE = 8
"""Without ``kv_cache_mb``, the KV cache may take this fraction (1/8) of the memory the process may use."""
_backend_ready = False
_init_lock = threading.Lock()


@dataclass(frozen=True)
class LlamaOptions:
    """What a manifest's ``backend_options`` may set for a GGUF model."""

    n_ctx: int = 2048
    """Context (prompt + answer) per request, in tokens."""
    parallel: int = 0
    """Requests decoded together; 0: as many as the KV cache's budget holds, up to 4 (see ``slots``)."""
    n_batch: int = 512
    """Tokens per ``llama_decode`` call, at most (prompt chunks plus one per decoding request)."""
    n_threads: int = 0
    """Compute threads; 0: one per core."""
    n_gpu_layers: int = 0
    embeddings: bool = False
    flash_attn: str = "auto"
    """llama.cpp's flash attention: auto (llama.cpp decides per device), on or off. It changes the
    arithmetic, so greedy answers may differ between on and off."""
    kv_cache_mb: int = 0
    """The KV cache's budget when ``parallel`` is 0, in MiB; 0: an eighth of the memory this process may
    use (the machine's RAM, or its cgroup's limit)."""

    @classmethod
    def from_backend_options(cls, options: BackendOptions) -> LlamaOptions:
        extra = options.extra
        _check_flash_attn(extra)
        default = cls()
        threads = int(extra.get("n_threads", options.intra_op_threads or 0)) or usable_cpus().count
        return cls(
            n_ctx=int(extra.get("n_ctx", default.n_ctx)),
            parallel=int(extra.get("parallel", default.parallel)),
            n_batch=int(extra.get("n_batch", default.n_batch)),
            n_threads=threads,
            n_gpu_layers=int(extra.get("n_gpu_layers", default.n_gpu_layers)),
            embeddings=bool(extra.get("embeddings", False)),
            flash_attn=_flash_attn(extra.get("flash_attn", default.flash_attn)),
            kv_cache_mb=int(extra.get("kv_cache_mb", default.kv_cache_mb)),
        )


def slots(n_ctx: int, token_bytes: int, budget_bytes: int) -> int:
    """How many sequences of ``n_ctx`` tokens, at ``token_bytes`` of KV cache a token, fit the budget:
    at least 1 (one request must run), at most 4 (a small box gains little from more)."""
    return max(1, min(_MOST_SLOTS, budget_bytes // max(1, n_ctx * token_bytes)))


def kv_token_bytes(lib: Any, model: Any) -> int:
    """Bytes of (f16) KV cache per token of context: a key and a value per layer and KV head."""
    head_size = lib.llama_model_n_embd(model) // max(1, lib.llama_model_n_head(model))
    return int(2 * lib.llama_model_n_layer(model) * lib.llama_model_n_head_kv(model) * head_size * 2)


def _sized(opts: LlamaOptions, token_bytes: int, name: str) -> LlamaOptions:
    """``opts`` with ``parallel`` set: as given, or as many slots as the KV cache's budget holds."""
    per_slot = opts.n_ctx * token_bytes
    if opts.parallel:
        log.info("%s: %d sequences of %d tokens, KV cache %.0f MiB", name, opts.parallel, opts.n_ctx,
                 opts.parallel * per_slot / 2**20)  # fmt: skip
        return opts
    budget = opts.kv_cache_mb * 2**20 or usable_memory() // _KV_SHARE
    parallel = slots(opts.n_ctx, token_bytes, budget)
    log.info("%s: %d sequences of %d tokens, KV cache %.0f MiB (%.1f KiB a token; budget %.0f MiB%s)", name,
             parallel, opts.n_ctx, parallel * per_slot / 2**20, token_bytes / 1024, budget / 2**20,
             "" if opts.kv_cache_mb else ", an eighth of this process's memory")  # fmt: skip
    return replace(opts, parallel=parallel)


def _flash_attn(value: Any) -> str:
    """``flash_attn``'s setting: auto, on or off (true and false, as ``--option`` parses them, count)."""
    if value is True or value is False:
        return "on" if value else "off"
    return str(value).lower()


def check_options(extra: dict[str, Any]) -> None:
    """Refuse (BadInput) llama.cpp options of the wrong kind, before a model is added with them."""
    for key in _WHOLE_OPTIONS:
        value, low = extra.get(key), -1 if key == "n_gpu_layers" else 0  # -1: every layer
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise BadInput(f"the llama.cpp option {key}={value!r} is not a whole number ≥ {low}.",
                           hint=f"e.g. --option {key}=4.")  # fmt: skip
    _check_flash_attn(extra)


def _check_flash_attn(extra: dict[str, Any]) -> None:
    if "flash_attn" in extra and _flash_attn(extra["flash_attn"]) not in _FLASH_ATTN:
        raise BadInput(f"the llama.cpp option flash_attn={extra['flash_attn']!r} is not auto, on or off.",
                       hint="--option flash_attn=off turns llama.cpp's flash attention off.")  # fmt: skip


def _require() -> Any:
    if _llama is None:
        raise BackendUnavailable(
            "the llama.cpp backend needs llama-cpp-python.", hint="pip install 'lanai[llm]' (it compiles llama.cpp)."
        )
    global _backend_ready
    with _init_lock:
        if not _backend_ready:
            _llama.llama_backend_init()
            _quiet_logs()
            _backend_ready = True
    return _llama


_log_callback: Any = None


def _quiet_logs() -> None:
    """Route llama.cpp's chatter (it prints every tensor on load) to our debug log."""
    global _log_callback

    @_llama.llama_log_callback
    def forward(level: int, text: bytes, user_data: Any) -> None:
        log.debug("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())

    _log_callback = forward  # keep a reference: llama.cpp holds the pointer
    _llama.llama_log_set(forward, ctypes.c_void_p(0))


class LlamaCppBackend:
    """A GGUF model and one context for ``parallel`` sequences."""

    platform = "llama_cpp"

    def __init__(self, model: Any, ctx: Any, options: LlamaOptions, path: Path) -> None:
        lib = _require()
        self._lib = lib
        self._model = model
        self._ctx = ctx
        self._vocab = lib.llama_model_get_vocab(model)
        self._memory = lib.llama_get_memory(ctx)
        self.options = options
        self.path = path
        self.runtime_version = f"llama-cpp-python {lib.__version__}"
        self.execution_provider = (
            f"llama.cpp CPU ({options.n_threads} threads, flash attention {options.flash_attn})"
            + (f", {options.n_gpu_layers} layers on GPU" if options.n_gpu_layers else "")
        )
        self.n_ctx = lib.llama_n_ctx_seq(ctx) if hasattr(lib, "llama_n_ctx_seq") else options.n_ctx
        self.parallel = options.parallel
        self.n_batch = options.n_batch
        self.n_embd = lib.llama_model_n_embd(model)
        self.n_vocab = int(lib.llama_vocab_n_tokens(self._vocab))
        self._batch = lib.llama_batch_init(options.n_batch, 0, 1)
        self._samplers: dict[int, Any] = {}
        self._grammars: dict[int, Any] = {}
        self._end_banned: dict[int, float] = {}
        """Per sequence whose sampling asks for it, how many more draws may not end the answer."""
        self._ends: np.ndarray | None = None
        """The model's end-of-generation tokens (found on first use)."""
        self._pool: np.ndarray | None = None
        """Every token and its logit, refilled for a grammar's steps (see ``sample``)."""
        template = lib.llama_model_chat_template(model, None)
        self.chat_template = template.decode("utf-8") if template else None
        self.bos_text = self._special_text(lib.llama_vocab_bos(self._vocab))
        self.eos_text = self._special_text(lib.llama_vocab_eos(self._vocab))
        self.add_bos = bool(lib.llama_vocab_get_add_bos(self._vocab))

    @classmethod
    def load(cls, path: Path, options: BackendOptions) -> LlamaCppBackend:
        lib = _require()
        opts = LlamaOptions.from_backend_options(options)
        if min(opts.n_ctx, opts.n_batch) < 1:
            raise ModelLoadError(f"invalid llama.cpp options {opts}.", hint="n_ctx and n_batch must be ≥ 1.")
        model_params = lib.llama_model_default_params()
        model_params.n_gpu_layers = opts.n_gpu_layers
        model = lib.llama_model_load_from_file(str(path).encode(), model_params)
        if not model:
            raise ModelLoadError(
                f"llama.cpp cannot load {Path(path).name}.",
                hint="check that it is a GGUF file this llama.cpp supports.",
            )
        opts = _sized(opts, kv_token_bytes(lib, model), Path(path).name)
        params = lib.llama_context_default_params()
        params.n_ctx = opts.n_ctx * opts.parallel
        params.n_seq_max = opts.parallel
        params.n_batch = params.n_ubatch = opts.n_batch
        params.n_threads = params.n_threads_batch = opts.n_threads
        params.kv_unified = False  # each sequence owns n_ctx tokens of cache
        if hasattr(params, "flash_attn_type"):
            params.flash_attn_type = _FLASH_ATTN[opts.flash_attn]
        elif opts.flash_attn != "auto":  # builds before the auto setting took a boolean
            params.flash_attn = opts.flash_attn == "on"
        params.embeddings = opts.embeddings
        if opts.embeddings:
            params.pooling_type = lib.LLAMA_POOLING_TYPE_MEAN
        ctx = lib.llama_init_from_model(model, params)
        if not ctx:
            lib.llama_model_free(model)
            raise ModelLoadError(
                f"llama.cpp could not make a context of {params.n_ctx} tokens for {Path(path).name}.",
                hint="lower n_ctx or parallel in the model's backend options.",
            )
        return cls(model, ctx, opts, Path(path))

    # -- vocabulary (any thread) ---------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (self._lib.llama_token * capacity)()
        n = self._lib.llama_tokenize(self._vocab, data, len(data), tokens, capacity, add_special, parse_special)
        if n < 0:  # not enough room: -n is what it needs
            capacity = -n
            tokens = (self._lib.llama_token * capacity)()
            n = self._lib.llama_tokenize(self._vocab, data, len(data), tokens, capacity, add_special, parse_special)
        return list(tokens[:n])

    def piece(self, token: int) -> bytes:
        """The bytes token ``token`` stands for (control tokens give none)."""
        buffer = ctypes.create_string_buffer(64)
        n = self._lib.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        if n < 0:
            buffer = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        return buffer.raw[:n]

    def is_end(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    def _special_text(self, token: int) -> str:
        if token < 0:
            return ""
        buffer = ctypes.create_string_buffer(64)
        n = self._lib.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, True)
        return buffer.raw[: max(n, 0)].decode("utf-8", "replace")

    # -- compute (the engine's thread only) ------------------------------------------------------------

    def decode(self, entries: Sequence[BatchEntry]) -> dict[int, int]:
        """Decode every entry in one call; return, per sequence that asked for logits, its batch index."""
        batch = self._batch
        n = 0
        wanted: dict[int, int] = {}
        for entry in entries:
            for i, token in enumerate(entry.tokens):
                batch.token[n] = token
                batch.pos[n] = entry.pos + i
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = entry.seq
                last = i == len(entry.tokens) - 1
                batch.logits[n] = entry.logits and last
                if entry.logits and last:
                    wanted[entry.seq] = n
                n += 1
        if n > self.options.n_batch:
            raise ValueError(f"{n} tokens in one batch; n_batch is {self.options.n_batch}")
        batch.n_tokens = n
        status = self._lib.llama_decode(self._ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status}")
        return wanted

    def start(self, seq: int, sampling: Sampling, keep: int = 0) -> None:
        """Give sequence ``seq`` a fresh sampler, keeping only the first ``keep`` positions of its cache
        (a prompt that begins with the same tokens as the last one in this sequence need not read them again).
        A grammar llama.cpp cannot parse raises BadInput."""
        lib = self._lib
        self.release(seq)
        lib.llama_memory_seq_rm(self._memory, seq, keep, -1)
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        self._samplers[seq] = chain  # freed by release(), whatever happens below
        if sampling.ignore_eos or sampling.min_tokens > 0:
            self._end_banned[seq] = float("inf") if sampling.ignore_eos else sampling.min_tokens
        add = lib.llama_sampler_chain_add
        if sampling.logit_bias:
            biases = (lib.llama_logit_bias * len(sampling.logit_bias))()
            for i, (token, bias) in enumerate(sampling.logit_bias):
                biases[i].token, biases[i].bias = token, bias
            add(chain, lib.llama_sampler_init_logit_bias(self.n_vocab, len(sampling.logit_bias), biases))
        if sampling.repeat_penalty != 1.0 or sampling.frequency_penalty or sampling.presence_penalty:
            penalties: tuple[float, ...] = (sampling.penalty_last_n, sampling.repeat_penalty,
                                            sampling.frequency_penalty, sampling.presence_penalty)  # fmt: skip
            if len(lib.llama_sampler_init_penalties.argtypes) == 5:  # llama.cpp builds that still take n_vocab
                penalties = (self.n_vocab, *penalties)
            add(chain, lib.llama_sampler_init_penalties(*penalties))
        if sampling.grammar is not None:  # kept out of the chain: see sample()
            grammar = lib.llama_sampler_init_grammar(self._vocab, sampling.grammar.encode(), b"root")
            if not grammar:
                self.release(seq)
                raise BadInput("llama.cpp could not parse the grammar.", hint="check its GBNF syntax.")
            self._grammars[seq] = grammar
        seed = _DEFAULT_SEED if sampling.seed is None else sampling.seed & 0xFFFFFFFF
        tau, eta = sampling.mirostat_tau, sampling.mirostat_eta
        if sampling.temperature <= 0:
            add(chain, lib.llama_sampler_init_greedy())
        elif sampling.mirostat == 1:  # llama.cpp's order: temperature, then Mirostat draws (m = 100)
            add(chain, lib.llama_sampler_init_temp(sampling.temperature))
            add(chain, lib.llama_sampler_init_mirostat(self.n_vocab, seed, tau, eta, 100))
        elif sampling.mirostat == 2:
            add(chain, lib.llama_sampler_init_temp(sampling.temperature))
            add(chain, lib.llama_sampler_init_mirostat_v2(seed, tau, eta))
        else:
            if sampling.top_k > 0:
                add(chain, lib.llama_sampler_init_top_k(sampling.top_k))
            if sampling.typical_p < 1.0:
                add(chain, lib.llama_sampler_init_typical(sampling.typical_p, 1))
            if sampling.top_p < 1.0:
                add(chain, lib.llama_sampler_init_top_p(sampling.top_p, 1))
            if sampling.min_p > 0.0:
                add(chain, lib.llama_sampler_init_min_p(sampling.min_p, 1))
            add(chain, lib.llama_sampler_init_temp(sampling.temperature))
            add(chain, lib.llama_sampler_init_dist(seed))

    def sample(self, seq: int, index: int) -> int:
        """The next token of ``seq`` from batch row ``index``. Under a grammar, the chain first picks freely
        and the grammar checks only that token; only when it is refused does the grammar filter the whole
        vocabulary and the chain pick again (as llama.cpp's own server does): checking every token at every
        step cost half the decoding speed."""
        lib, chain = self._lib, self._samplers[seq]
        if self._end_banned.get(seq, 0) > 0:  # min_tokens or ignore_eos: the answer may not end here
            self._end_banned[seq] -= 1
            logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(self._ctx, index), shape=(self.n_vocab,))
            logits[self._end_tokens()] = -np.inf
        grammar = self._grammars.get(seq)
        if grammar is None:
            return int(lib.llama_sampler_sample(chain, self._ctx, index))
        candidates = self._candidates(index)
        lib.llama_sampler_apply(chain, ctypes.byref(candidates))
        token = int(candidates.data[candidates.selected].id)
        if not self._grammar_allows(grammar, token):
            candidates = self._candidates(index)
            lib.llama_sampler_apply(grammar, ctypes.byref(candidates))
            lib.llama_sampler_apply(chain, ctypes.byref(candidates))
            token = int(candidates.data[candidates.selected].id)
        lib.llama_sampler_accept(grammar, token)
        lib.llama_sampler_accept(chain, token)
        return token

    def _end_tokens(self) -> np.ndarray:
        if self._ends is None:
            self._ends = np.array([t for t in range(self.n_vocab) if self.is_end(t)], dtype=np.int64)
        return self._ends

    def _candidates(self, index: int) -> Any:
        """Every token with its logit at batch row ``index``, as the samplers take them."""
        if self._pool is None:
            self._pool = np.zeros(self.n_vocab, dtype=[("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
        pool = self._pool
        pool["id"] = np.arange(self.n_vocab, dtype=np.int32)
        pool["logit"] = np.ctypeslib.as_array(self._lib.llama_get_logits_ith(self._ctx, index), shape=(self.n_vocab,))
        pool["p"] = 0.0
        data = pool.ctypes.data_as(ctypes.POINTER(self._lib.llama_token_data))
        return self._lib.llama_token_data_array(data, self.n_vocab, -1, False)

    def _grammar_allows(self, grammar: Any, token: int) -> bool:
        one = (self._lib.llama_token_data * 1)()
        one[0].id, one[0].logit, one[0].p = token, 1.0, 0.0
        single = self._lib.llama_token_data_array(one, 1, -1, False)
        self._lib.llama_sampler_apply(grammar, ctypes.byref(single))
        return bool(np.isfinite(one[0].logit))

    def logprob(self, index: int, token: int, top: int) -> TokenLogprob:
        """``token``'s log probability at batch row ``index`` of the last decode (the model's own, before
        any sampling setting), with the ``top`` likeliest tokens there."""
        pointer = self._lib.llama_get_logits_ith(self._ctx, index)
        logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).astype(np.float64)
        peak = float(logits.max())
        logprobs = logits - (peak + float(np.log(np.exp(logits - peak).sum())))
        best: tuple[tuple[int, bytes, float], ...] = ()
        if top > 0:
            chosen = np.argpartition(-logprobs, top - 1)[:top]
            chosen = chosen[np.argsort(-logprobs[chosen], kind="stable")]
            best = tuple((int(t), self.piece(int(t)), float(logprobs[t])) for t in chosen)
        return TokenLogprob(token, self.piece(token), float(logprobs[token]), best)

    def fork(self, source: int, target: int) -> None:
        """Copy ``source``'s cache into ``target``: both continue from the same prompt, read once."""
        self._lib.llama_memory_seq_rm(self._memory, target, -1, -1)
        self._lib.llama_memory_seq_cp(self._memory, source, target, -1, -1)

    def save_state(self, seq: int) -> bytes:
        """Sequence ``seq``'s cache (its KV state), in llama.cpp's own format."""
        lib = self._lib
        size = lib.llama_state_seq_get_size(self._ctx, seq)
        buffer = (ctypes.c_uint8 * size)()
        written = lib.llama_state_seq_get_data(self._ctx, buffer, size, seq)
        return ctypes.string_at(buffer, written)

    def load_state(self, seq: int, state: bytes) -> bool:
        """Put a saved cache into sequence ``seq`` (replacing what it held). False if llama.cpp cannot read
        it (another model, another llama.cpp build): ``seq`` is then empty."""
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if self._lib.llama_state_seq_set_data(self._ctx, buffer, len(state), seq) == 0:
            self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)
            return False
        return True

    def release(self, seq: int) -> None:
        """Free sequence ``seq``'s sampler; its cache stays for a later prompt with the same beginning."""
        self._end_banned.pop(seq, None)
        chain = self._samplers.pop(seq, None)
        if chain is not None:
            self._lib.llama_sampler_free(chain)
        grammar = self._grammars.pop(seq, None)
        if grammar is not None:
            self._lib.llama_sampler_free(grammar)

    def clear(self, seq: int) -> None:
        """Forget sequence ``seq``: its cache and its sampler."""
        self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)
        self.release(seq)

    def embed(self, tokens: Sequence[int]) -> np.ndarray:
        """The mean-pooled, L2-normalised embedding of ``tokens``."""
        if not self.options.embeddings:
            raise BadInput("this model was not loaded for embeddings.", hint="add it with --task embed.")
        self.clear(0)
        for start in range(0, len(tokens), self.options.n_batch):
            chunk = tokens[start : start + self.options.n_batch]
            self.decode([BatchEntry(0, chunk, start, start + len(chunk) == len(tokens))])
        pointer = self._lib.llama_get_embeddings_seq(self._ctx, 0)
        vector = np.ctypeslib.as_array(pointer, shape=(self.n_embd,)).astype(np.float32)
        self.clear(0)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector

    def close(self) -> None:
        lib = self._lib
        for seq in list(self._samplers):
            self.clear(seq)
        if self._batch is not None:
            lib.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            lib.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            lib.llama_model_free(self._model)
            self._model = None
