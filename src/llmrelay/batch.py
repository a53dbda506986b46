"""LiteLLM's batch helpers: many conversations to one model, or one conversation to many models.

All three run ``completion`` calls on a thread pool (each call as ``completion`` would make it,
with the same keyword arguments):

* :func:`batch_completion`: one call per conversation; the answers in order, a failed call's
  exception in its place;
* :func:`batch_completion_models`: the same conversation to every model; the first answer to
  arrive (the other calls are not waited for);
* :func:`batch_completion_models_all_responses`: every model's answer, in model order; failed
  calls are left out.
"""

from __future__ import annotations

import logging
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Iterable

__all__ = ["batch_completion", "batch_completion_models", "batch_completion_models_all_responses"]

log = logging.getLogger("llmrelay")


def _completion() -> Any:
    from .main import completion

    return completion


def batch_completion(
    model: str,
    messages: list[list[dict[str, Any]]] | None = None,
    max_workers: int | None = 100,
    **kwargs: Any,
) -> list[Any]:
    """``completion(model, conversation, **kwargs)`` for each conversation in ``messages``, at
    most ``max_workers`` at a time; the responses in order (an exception where a call failed)."""
    completion = _completion()
    conversations = list(messages or [])
    if not conversations:
        return []
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    nested = kwargs.pop("kwargs", None) or {}
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers or 100, len(conversations)))) as pool:
        futures = [pool.submit(completion, model=model, messages=c, **kwargs, **nested) for c in conversations]
    results: list[Any] = []
    for future in futures:
        try:
            results.append(future.result())
        except Exception as exc:  # LiteLLM returns the exception in the failed call's place
            results.append(exc)
    return results


def _first_success(futures: Iterable[Future]) -> Any:
    """The first result of ``futures`` to arrive without an error; None if all failed."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            if future.exception() is None and future.result() is not None:
                return future.result()
            log.debug("batch_completion_models: a call failed: %r", future.exception())
    return None


def batch_completion_models(*args: Any, **kwargs: Any) -> Any:
    """The first answer to the same request sent to every model of ``models=[...]`` at once.

    When every call fails, the first model's exception is raised. ``deployments=[{...}]``
    (with ``model_list=``) sends to each deployment's params instead, and returns None when
    all fail, as LiteLLM does. Calls still running go on in the background.
    """
    completion = _completion()
    kwargs.pop("model", None)
    if "models" in kwargs:
        models = kwargs.pop("models")
        models = [models] if isinstance(models, str) else list(models)
        if not models:
            return None
        pool = ThreadPoolExecutor(max_workers=len(models))
        try:
            futures = [pool.submit(completion, *args, model=m, **kwargs) for m in models]
            response = _first_success(futures)
            if response is None:
                for future in futures:
                    future.result()  # raises the first model's error
            return response
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    if "deployments" in kwargs:
        deployments = kwargs.pop("deployments")
        kwargs.pop("model_list", None)
        nested = kwargs.pop("kwargs", None) or {}
        if not deployments:
            return None
        pool = ThreadPoolExecutor(max_workers=len(deployments))
        try:
            return _first_success([pool.submit(completion, **{**kwargs, **d, **nested}) for d in deployments])
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    return None


def batch_completion_models_all_responses(*args: Any, **kwargs: Any) -> list[Any]:
    """The answers of every model of ``models`` (a name or a list) to the same request, in model
    order; models whose call failed are left out."""
    completion = _completion()
    kwargs.pop("model", None)
    if "models" not in kwargs:
        raise ValueError("'models' param not in kwargs")
    models = kwargs.pop("models")
    if isinstance(models, str):
        models = [models]
    elif isinstance(models, (list, tuple)):
        models = list(models)
    else:
        raise TypeError("'models' must be a string or list of strings")
    if not models:
        return []
    with ThreadPoolExecutor(max_workers=len(models)) as pool:
        futures = [pool.submit(completion, *args, model=m, **kwargs) for m in models]
    responses = []
    for model, future in zip(models, futures):
        if future.exception() is not None:
            log.debug("batch_completion_models_all_responses: %s failed: %r", model, future.exception())
        elif future.result() is not None:
            responses.append(future.result())
    return responses
