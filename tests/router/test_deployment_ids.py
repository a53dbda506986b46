"""Generated deployment ids: the same in every process with the same config (so metrics
labelled by ``model_id`` add up across ``--workers``), distinct within one router."""

from __future__ import annotations

from llmrelay import Router


def entry(model: str = "openai/x", key: str = "sk-a") -> dict:
    return {"model_name": "m", "litellm_params": {"model": model, "api_key": key}}


def ids(router: Router) -> list[str]:
    return [d["model_info"]["id"] for d in router.get_model_list()]


def test_generated_ids_are_the_same_in_every_router_with_the_same_config():
    first = ids(Router(model_list=[entry(), entry("openai/y")]))
    assert first == ids(Router(model_list=[entry(), entry("openai/y")]))
    assert len(set(first)) == 2
    # the api_key is not part of it (nothing derived from a secret), the params and place are
    assert ids(Router(model_list=[entry(key="sk-b"), entry("openai/y")])) == first
    assert ids(Router(model_list=[entry("openai/y"), entry()])) != first


def test_identical_entries_get_distinct_ids_also_when_added_after_a_delete():
    router = Router(model_list=[entry(), entry()])
    a, b = ids(router)
    assert a != b
    router.delete_deployment(a)
    router.add_deployment(entry())  # its place is the one b was made for: another id
    assert len(set(ids(router))) == 2 and b in ids(router)
    assert ids(Router(model_list=[entry(), {**entry(), "model_info": {"id": "mine"}}]))[1] == "mine"
