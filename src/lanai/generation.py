"""Text generation for one language model: a bounded queue, slots decoded together, streamed tokens.

One dedicated thread owns the model's context. Each step it admits waiting requests into free slots
(oldest first), then builds one batch: the next token of every slot that is generating, and as much of
the waiting prompts as the batch has room for. So a dozen users share each forward pass instead of
queueing behind one another, a new prompt is read while others keep generating, and no request can cut
another short. Tokens travel to the event loop one ``call_soon_threadsafe`` at a time; a client that
goes away cancels its request, and its slot is freed at the next step.

Several answers to one prompt (OpenAI's ``n``) read the prompt once: the first is admitted, and when its
prompt has been read the others are forked from its cache into free sequences, each sampling on its own.

A finished request leaves its prompt and answer in its sequence's cache. A new request goes to the free
sequence whose cached tokens share the longest beginning with its prompt and reads only the rest: apps on
a LAN send the same system prompt over and over, and a chat resends the whole conversation every turn.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from lanai.backends.base import BatchEntry, LanguageBackend, Sampling, TokenLogprob
from lanai.errors import BadInput, NotReady, Overloaded
from lanai.prompt_cache import PromptCache

__all__ = ["Engine", "Generation", "Chunk", "Usage", "GenerateRequest"]

log = logging.getLogger(__name__)

_MIN_CACHE_GAIN = 16  # tokens a saved cache must add over a slot's before it is loaded


@dataclass(frozen=True)
class GenerateRequest:
    prompt: Sequence[int]
    """Prompt tokens."""
    max_tokens: int | None = None
    """None: until the model ends or the context is full."""
    sampling: Sampling = Sampling()
    stop: tuple[str, ...] = ()
    logprobs: int | None = None
    """Report each generated token's log probability, with this many likeliest alternatives (None: off)."""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    queue_s: float
    time_to_first_token_s: float
    decode_s: float
    """From the first token to the last."""

    @property
    def tokens_per_second(self) -> float:
        return (self.completion_tokens - 1) / self.decode_s if self.completion_tokens > 1 and self.decode_s > 0 else 0.0


@dataclass(frozen=True)
class Chunk:
    """Text generated since the last chunk. The last chunk has a ``finish_reason`` (stop, length or
    error) and the ``usage``; an ``error`` says what went wrong after the stream began."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    error: str | None = None
    logprobs: tuple[TokenLogprob, ...] = ()
    """Of the tokens generated since the last chunk (when the request asked for them)."""
    stop_sequence: str | None = None
    """On the last chunk: the stop string that ended the answer (cut from the text), if one did."""


class Generation:
    """One request's stream of chunks. Iterate it on the event loop; ``cancel()`` to stop early."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._chunks: asyncio.Queue[Chunk] = asyncio.Queue()
        self.cancelled = False
        self.on_finish: Callable[[Chunk], None] | None = None
        """Called on the event loop with the last chunk, when the reader gets it (the plane counts the
        request towards its model's outcomes); not for a reader that stops early."""

    def cancel(self) -> None:
        self.cancelled = True

    def _put(self, chunk: Chunk) -> None:  # engine thread
        try:
            self._loop.call_soon_threadsafe(self._chunks.put_nowait, chunk)
        except RuntimeError:  # the reader's event loop has closed: nobody is left to tell
            self.cancelled = True

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        try:
            while True:
                chunk = await self._chunks.get()
                if chunk.finish_reason is not None and self.on_finish is not None:
                    self.on_finish(chunk)
                yield chunk
                if chunk.finish_reason is not None:
                    return
        finally:
            self.cancel()  # a consumer that stops early (client gone) frees the slot


@dataclass
class _Slot:
    seq: int
    request: GenerateRequest
    generation: Generation
    enqueued: float
    started: float = 0.0
    first_token: float = 0.0
    prompt_done: int = 0
    """Prompt tokens in the cache so far (read now, or kept from an earlier request)."""
    cached: int = 0
    """Prompt tokens found in the cache, not read again."""
    answer: list[int] = field(default_factory=list)
    """Generated tokens decoded into the cache (all but the last one sampled)."""
    last_token: int | None = None
    produced: int = 0
    pending: bytes = b""
    """Bytes of a UTF-8 character not yet complete."""
    held: str = ""
    """Text held back because it may be the start of a stop string."""
    done: bool = False
    stop_prefixes: set[str] = field(default_factory=set)
    matched: str | None = None
    """The stop string that ended the answer."""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    """Of tokens generated but not yet sent."""
    followers: list[_Slot] = field(default_factory=list)
    """Other answers to the same prompt, forked from this slot's cache once it has read the prompt."""

    @property
    def position(self) -> int:
        return self.prompt_done + self.produced


class Engine:
    """Generation for one model on a thread of its own."""

    def __init__(
        self,
        model: LanguageBackend,
        *,
        max_queue: int = 64,
        observer: Callable[[Usage], None] | None = None,
        name: str = "lanai-llm",
        prompt_cache: PromptCache | None = None,
    ) -> None:
        self.model = model
        self.prompt_cache = prompt_cache
        self.max_queue = max_queue
        self._observer = observer
        self._waiting: deque[_Slot] = deque()
        self._embeds: deque[tuple[Sequence[int], Future[np.ndarray]]] = deque()
        self._active: dict[int, _Slot] = {}
        self._free = list(range(model.parallel))
        self._cached: dict[int, Sequence[int]] = {}
        """Per free sequence, the tokens (prompt, then answer) its cache still holds."""
        self._wake = threading.Condition()
        self._closing = False
        self._starting = 0
        """Requests taken off the queue and not yet running (counted first, so :attr:`busy` never misses one)."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def active(self) -> int:
        return len(self._active)

    @property
    def busy(self) -> bool:
        """Whether any request is queued, being started, or running. Read without the lock: a request moves
        queue → starting → running, and each step is counted before the last one forgets it, so reading the
        three in that order cannot miss it."""
        return bool(self._waiting) or self._starting > 0 or bool(self._active)

    @property
    def slots(self) -> int:
        """Sequences decoded at once."""
        return int(self.model.parallel)

    @property
    def waiting(self) -> int:
        """Answers waiting for a slot (several answers to one prompt count each)."""
        return sum(1 + len(slot.followers) for slot in self._waiting)

    def submit(self, request: GenerateRequest) -> Generation:
        """Queue ``request``; its chunks arrive on the calling event loop."""
        return self.submit_many([request])[0]

    def submit_many(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        """Queue several answers to one prompt (their sampling may differ); the prompt is read once."""
        if self._closing:
            raise NotReady("the model is being unloaded.", hint="retry in a moment.")
        first = requests[0]
        if any(r.prompt != first.prompt for r in requests):
            raise ValueError("submit_many: every request must have the same prompt")
        limit = self.model.n_ctx
        if len(first.prompt) >= limit:
            raise BadInput(
                f"the prompt is {len(first.prompt)} tokens; this model's context holds {limit} tokens per request, "
                "the answer included.",
                hint="shorten the prompt, or load the model with a larger n_ctx.",
            )
        if not first.prompt:
            raise BadInput("the prompt is empty.", hint="send some text.")
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        slots = [_Slot(-1, request, Generation(loop), now) for request in requests]
        for slot in slots:
            slot.stop_prefixes = {stop[:i] for stop in slot.request.stop for i in range(1, len(stop))}
        leader = slots[0]
        leader.followers = slots[1:]
        with self._wake:
            if self.waiting + len(slots) > self.max_queue:  # callers who went away while waiting give their place up
                self._waiting = deque(s for s in self._waiting if not _all_cancelled(s))
            if self.waiting + len(slots) > self.max_queue:
                raise Overloaded(
                    f"{self.waiting} requests are already waiting for this model.",
                    hint="retry after a short wait.",
                )
            self._waiting.append(leader)
            self._wake.notify()
        return [slot.generation for slot in slots]

    async def embed(self, tokens: Sequence[int]) -> np.ndarray:
        """The model's embedding of ``tokens``, computed on the engine's thread."""
        if self._closing:
            raise NotReady("the model is being unloaded.", hint="retry in a moment.")
        if not tokens:
            raise BadInput("an input to embed is empty.", hint="send some text.")
        if len(tokens) > self.model.n_ctx:
            raise BadInput(
                f"an input is {len(tokens)} tokens; this model embeds at most {self.model.n_ctx}.",
                hint="split the text.",
            )
        future: Future[np.ndarray] = Future()
        with self._wake:
            if len(self._embeds) >= self.max_queue:
                raise Overloaded(f"{len(self._embeds)} inputs are already waiting for this model.", hint="retry.")
            self._embeds.append((tokens, future))
            self._wake.notify()
        return await asyncio.wrap_future(future)

    def close(self, timeout: float | None = None) -> None:
        """Stop taking requests; let running ones finish (up to ``timeout`` s); end the thread."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._closing = True
        while (self._active or self._waiting) and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.01)
        with self._wake:
            slots = [*self._waiting, *self._active.values()]
            for slot in [*slots, *(f for s in slots for f in s.followers)]:
                if not slot.generation.cancelled:  # its reader is still there: tell it, don't leave it waiting
                    slot.generation._put(Chunk("", "error", error="the model was unloaded before this finished."))
                slot.generation.cancel()
            self._wake.notify()
        self._thread.join(5)
        if self.prompt_cache is not None and not self._thread.is_alive():
            self._save_prompt_caches()

    def _save_prompt_caches(self) -> None:
        """The slots' caches and the saved ones, to disk for the next load (the engine's thread has ended)."""
        cache = self.prompt_cache
        assert cache is not None
        try:
            for seq, tokens in self._cached.items():
                if len(tokens) >= cache.min_tokens and not cache.covers(tokens):
                    cache.keep(tokens, self.model.save_state(seq))
            cache.persist()
        except Exception:  # the cache is a help, never a reason for an unload to fail
            log.exception("could not save the prompt caches")

    # -- the engine thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._active and not self._waiting and not self._embeds and not self._closing:
                    self._wake.wait()
                if self._closing and not self._active and not self._waiting and not self._embeds:
                    return
                self._admit()
                embeds = list(self._embeds)
                self._embeds.clear()
            for tokens, future in embeds:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(self.model.embed(tokens))
                    except Exception as exc:
                        future.set_exception(exc)
            if self._closing and not self._active and not self._waiting:
                return
            self._drop_cancelled()
            if not self._active:
                continue
            try:
                self._step()
            except Exception as exc:  # a failed decode fails the requests in it, not the engine
                log.exception("generation step failed")
                for slot in list(self._active.values()):
                    self._finish(slot, "error", error=f"generation failed: {exc}")
                for seq in list(self._cached):  # a failed decode may have left any cache half-written
                    self.model.clear(seq)
                self._cached.clear()

    def _admit(self) -> None:
        while self._waiting and self._free:
            self._starting += 1
            try:
                slot = self._waiting.popleft()
                if slot.generation.cancelled:
                    self._orphan(slot)
                    continue
                slot.seq, reuse = self._pick_sequence(slot.request.prompt)
                if self.prompt_cache is not None:
                    reuse = self._from_prompt_cache(slot.seq, slot.request.prompt, reuse)
                if not self._begin(slot, reuse):
                    self._orphan(slot)
            finally:
                self._starting -= 1

    def _from_prompt_cache(self, seq: int, prompt: Sequence[int], reuse: int) -> int:
        """Before ``seq``'s cache is overwritten, save it if it is long and most of it would be lost; then,
        if a saved cache shares more of ``prompt`` than ``seq`` does, put it into ``seq``. Returns how many
        of the prompt's tokens ``seq`` now holds."""
        cache = self.prompt_cache
        assert cache is not None
        held = self._cached.get(seq, ())
        if len(held) >= cache.min_tokens and reuse < len(held) // 2 and not cache.covers(held):
            cache.keep(held, self.model.save_state(seq))
        found = cache.best(prompt)
        if found is None:
            return reuse
        entry, same = found
        same = min(same, len(prompt) - 1)
        if same <= reuse + _MIN_CACHE_GAIN:
            return reuse
        state = cache.state_of(entry)
        if state is None:
            return reuse
        if not self.model.load_state(seq, state):  # another build's state, or damaged: forget it
            log.info("a saved prompt cache could not be loaded; it is dropped")
            cache.drop(entry)
            self._cached.pop(seq, None)
            return 0
        cache.hits += 1
        self._cached[seq] = entry.tokens
        return same

    def _begin(self, slot: _Slot, keep: int) -> bool:
        """Start ``slot`` on its sequence (taken from the free ones), keeping ``keep`` cached tokens."""
        self._free.remove(slot.seq)
        slot.started = time.perf_counter()
        try:
            self.model.start(slot.seq, slot.request.sampling, keep=keep)
        except Exception as exc:  # e.g. a grammar the runtime refuses: this request fails, not the engine
            self._free.append(slot.seq)
            self._cached.pop(slot.seq, None)
            self.model.clear(slot.seq)
            slot.done = True
            message = getattr(exc, "message", None) or str(exc)
            slot.generation._put(Chunk("", "error", error=f"generation could not start: {message}"))
            return False
        self._cached.pop(slot.seq, None)
        slot.prompt_done = slot.cached = keep
        self._active[slot.seq] = slot
        return True

    def _orphan(self, slot: _Slot) -> None:
        """The slot will not read its prompt: its followers wait for slots of their own, first in line."""
        followers = [f for f in slot.followers if not f.generation.cancelled]
        slot.followers = []
        if followers:
            followers[0].followers = followers[1:]
            self._waiting.appendleft(followers[0])

    def _fork(self, leader: _Slot, index: int) -> None:
        """``leader`` has read its prompt (logits at batch row ``index``): its followers take free sequences
        with a copy of its cache and draw their first token from the same logits."""
        followers, leader.followers = leader.followers, []
        waiting = []
        for follower in followers:
            if follower.generation.cancelled:
                continue
            if not self._free:
                waiting.append(follower)
                continue
            follower.seq = self._free[0]  # the least recently used cache: it is overwritten
            if not self._begin(follower, 0):
                continue
            self.model.fork(leader.seq, follower.seq)
            follower.prompt_done = len(follower.request.prompt)
            follower.cached = follower.prompt_done  # read once, for the leader
            self._advance(follower, self.model.sample(follower.seq, index), index)
        if waiting:  # no sequence free for them now: they read the prompt themselves later
            waiting[0].followers = waiting[1:]
            self._waiting.appendleft(waiting[0])

    def _pick_sequence(self, prompt: Sequence[int]) -> tuple[int, int]:
        """The free sequence whose cache shares the longest beginning with ``prompt``, and how many of its
        tokens can be kept (never the whole prompt: its last token must be read to get the next one).
        Without a match, the least recently used one, so that fresh prompts do not evict useful caches."""
        best, reuse = self._free[0], 0
        for seq in self._free:
            cached = self._cached.get(seq, ())
            same = 0
            for a, b in zip(cached, prompt):
                if a != b:
                    break
                same += 1
            same = min(same, len(prompt) - 1)
            if same > reuse:
                best, reuse = seq, same
        return best, reuse

    def _drop_cancelled(self) -> None:
        for slot in list(self._active.values()):
            if slot.generation.cancelled:
                self._release(slot)

    def _step(self) -> None:
        budget = self.model.n_batch
        entries = []
        for slot in self._active.values():  # every generating request advances one token
            if slot.last_token is not None:
                entries.append(BatchEntry(slot.seq, [slot.last_token], slot.position - 1, True))
                budget -= 1
        for slot in sorted(self._active.values(), key=lambda s: s.started):  # then prompts, oldest first
            if slot.last_token is None and budget > 0:
                prompt = slot.request.prompt
                chunk = prompt[slot.prompt_done : slot.prompt_done + budget]
                last = slot.prompt_done + len(chunk) == len(prompt)
                entries.append(BatchEntry(slot.seq, chunk, slot.prompt_done, last))
                budget -= len(chunk)
        wanted = self.model.decode(entries)
        for entry in entries:
            slot = self._active[entry.seq]
            if slot.last_token is None:
                slot.prompt_done += len(entry.tokens)
            else:
                slot.answer.append(slot.last_token)  # now in the cache too
        for seq, index in wanted.items():
            slot = self._active[seq]
            if slot.followers:  # its prompt is read: the other answers to it start from here
                self._fork(slot, index)
            self._advance(slot, self.model.sample(seq, index), index)

    def _advance(self, slot: _Slot, token: int, index: int) -> None:
        now = time.perf_counter()
        if slot.produced == 0:
            slot.first_token = now
        slot.produced += 1
        if self.model.is_end(token):
            self._finish(slot, "stop")
            return
        if slot.request.logprobs is not None:
            slot.logprobs.append(self.model.logprob(index, token, slot.request.logprobs))
        slot.last_token = token
        slot.pending += self.model.piece(token)
        text = _complete_utf8(slot)
        reason = self._emit(slot, text)
        if reason is None:
            limit = slot.request.max_tokens
            if (limit is not None and slot.produced >= limit) or slot.position >= self.model.n_ctx:
                reason = "length"
        if reason is not None:
            self._finish(slot, reason)

    def _emit(self, slot: _Slot, text: str) -> str | None:
        """Send what is safe to send; return "stop" when a stop string appears."""
        held = slot.held + text
        for stop in slot.request.stop:
            at = held.find(stop)
            if at >= 0:
                slot.held, slot.pending, slot.matched = "", b"", stop
                if at:
                    slot.generation._put(Chunk(held[:at], logprobs=self._take_logprobs(slot)))
                return "stop"
        keep = max((len(p) for p in slot.stop_prefixes if held.endswith(p)), default=0)
        send, slot.held = (held[:-keep], held[-keep:]) if keep else (held, "")
        if send:
            slot.generation._put(Chunk(send, logprobs=self._take_logprobs(slot)))
        return None

    @staticmethod
    def _take_logprobs(slot: _Slot) -> tuple[TokenLogprob, ...]:
        taken = tuple(slot.logprobs)
        slot.logprobs.clear()
        return taken

    def _finish(self, slot: _Slot, reason: str, error: str | None = None) -> None:
        if slot.done:
            return
        slot.done = True
        tail = slot.held + slot.pending.decode("utf-8", "replace")  # empty after a stop string
        now = time.perf_counter()
        first = slot.first_token or now
        usage = Usage(
            prompt_tokens=len(slot.request.prompt),
            completion_tokens=slot.produced,
            cached_tokens=slot.cached,
            queue_s=slot.started - slot.enqueued,
            time_to_first_token_s=first - slot.enqueued,
            decode_s=now - first,
        )
        slot.generation._put(Chunk(tail, reason, usage, error, self._take_logprobs(slot), slot.matched))
        if self._observer is not None and reason != "error":
            self._observer(usage)
        self._release(slot, keep_cache=reason != "error")

    def _release(self, slot: _Slot, *, keep_cache: bool = True) -> None:
        self._orphan(slot)  # followers not yet forked (its prompt failed or was cancelled) wait on their own
        self._active.pop(slot.seq, None)
        if keep_cache:
            self.model.release(slot.seq)
            prompt = slot.request.prompt
            # the answer stays too: the next turn of a chat resends it inside its prompt
            self._cached[slot.seq] = (
                [*prompt, *slot.answer] if slot.prompt_done == len(prompt) else prompt[: slot.prompt_done]
            )
        else:
            self.model.clear(slot.seq)
            self._cached.pop(slot.seq, None)
        self._free.append(slot.seq)  # least recently used first: a prompt that shares nothing evicts the oldest cache


def _all_cancelled(slot: _Slot) -> bool:
    return slot.generation.cancelled and all(f.generation.cancelled for f in slot.followers)


def _complete_utf8(slot: _Slot) -> str:
    """Decode the slot's pending bytes up to the last complete UTF-8 character."""
    data = slot.pending
    for cut in range(len(data), max(len(data) - 4, -1), -1):
        try:
            text = data[:cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        slot.pending = data[cut:]
        return text
    slot.pending = b""
    return data.decode("utf-8", "replace")
