"""LiteLLM's cost calls and the facts its tests assert (tests/local_testing/test_completion_cost.py,
docs/my-website/docs/completion/token_usage.md): module-level names, fine-tune and deployment-name
pricing, custom prices, register_model, and response_cost on real (fake-upstream) calls."""

from __future__ import annotations

import pytest

import llmrelay as litellm
from llmrelay import (  # the names test_completion_cost.py imports at its top
    Choices,
    Message,
    ModelResponse,
    TranscriptionResponse,
    Usage,
    completion_cost,
    cost_per_token,
    get_max_tokens,
    model_cost,
    open_ai_chat_completion_models,
)


def response(model: str, prompt: int = 21, completion: int = 17) -> ModelResponse:
    return ModelResponse(
        id="chatcmpl-e41836bb", created=1700775391, model=model, object="chat.completion",
        choices=[Choices(finish_reason=None, index=0, message=Message(content="A canvas of blue", role="assistant"))],
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion),
    )


def test_module_level_names():
    assert "gpt-4o" in open_ai_chat_completion_models and "gpt-4o" in litellm.model_list
    assert "text-embedding-3-small" in litellm.open_ai_embedding_models
    assert "gpt-4o" in litellm.models_by_provider["openai"]
    assert TranscriptionResponse(text="Four score").text == "Four score"
    assert get_max_tokens("gpt-3.5-turbo") == 4096


def test_fine_tuned_openai_model_is_priced_at_its_fine_tune_prices():
    resp = response("ft:gpt-3.5-turbo:my-org:custom_suffix:id")
    cost = completion_cost(completion_response=resp, custom_llm_provider="openai")
    expected = (model_cost["ft:gpt-3.5-turbo"]["input_cost_per_token"] * 21
                + model_cost["ft:gpt-3.5-turbo"]["output_cost_per_token"] * 17)
    assert cost == expected
    assert model_cost["ft:gpt-3.5-turbo"]["input_cost_per_token"] > model_cost["gpt-3.5-turbo"]["input_cost_per_token"]
    dated = cost_per_token(model="ft:gpt-4o-mini-2024-07-18:org::abc", prompt_tokens=1000, completion_tokens=1000)
    assert dated == cost_per_token(model="ft:gpt-4o-mini", prompt_tokens=1000, completion_tokens=1000)


def test_unpriced_model_argument_falls_back_to_the_answering_model():
    """test_cost_azure_gpt_35: an Azure deployment's own name is priced as the model that answered."""
    cost = completion_cost(completion_response=response("gpt-4o-2024-08-06"), model="azure/chatgpt-deployment-2")
    assert cost == pytest.approx(completion_cost(completion_response=response("gpt-4o"), model="gpt-4o"))
    with pytest.raises(Exception):
        completion_cost(completion_response=response("no-such-model-x"), model="azure/no-such-deployment")


def test_custom_cost_per_token_and_register_model():
    cost = completion_cost(completion_response=response("ft:gpt-3.5-turbo:my-org:custom_suffix:id"),
                           custom_cost_per_token={"input_cost_per_token": 1000, "output_cost_per_token": 20})
    assert round(cost, 5) == round(1000 * 21 + 17 * 20, 5)
    litellm.register_model({"replicate/meta/meta-llama-3-8b-instruct": {
        "input_cost_per_token": 0.00000005, "output_cost_per_token": 0.00000025, "litellm_provider": "replicate"}})
    try:
        cost = completion_cost(completion_response=response("replicate/meta/meta-llama-3-8b-instruct", 48, 31),
                               messages=[{"role": "user", "content": "Hey, how's it going?"}])
        assert round(cost, 5) == round(0.00000005 * 48 + 0.00000025 * 31, 5)
    finally:  # the table is the process's: leave it as it was
        from llmrelay import cost as cost_module

        model_cost.pop("replicate/meta/meta-llama-3-8b-instruct", None)
        cost_module._resolved.clear()


def test_response_cost_on_calls_matches_cost_per_token(upstream):
    call = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hey!"}],
            "api_base": upstream.url + "/v1", "api_key": "sk-x"}
    answer = litellm.completion(**call)
    prompt, completion = cost_per_token(model="gpt-4o-mini", prompt_tokens=answer.usage.prompt_tokens,
                                        completion_tokens=answer.usage.completion_tokens)
    assert answer._hidden_params["response_cost"] == pytest.approx(prompt + completion)
    assert completion_cost(completion_response=answer) == pytest.approx(prompt + completion)
    free = litellm.completion(**call, input_cost_per_token=0.0, output_cost_per_token=0.0)
    assert free._hidden_params["response_cost"] == 0


def test_azure_gpt_35_names_are_priced_as_gpt_3_5():
    """tests/test_keys.py prices a key's spend with cost_per_token(model="gpt-35-turbo",
    custom_llm_provider="azure") and model="azure/gpt-35-turbo": Azure's name for gpt-3.5-turbo."""
    expected = cost_per_token(model="gpt-3.5-turbo", prompt_tokens=21, completion_tokens=17)
    assert expected[0] > 0
    assert cost_per_token(model="gpt-35-turbo", prompt_tokens=21, completion_tokens=17,
                          custom_llm_provider="azure") == expected
    assert cost_per_token(model="azure/gpt-35-turbo", prompt_tokens=21, completion_tokens=17) == expected
    assert litellm.get_model_info("azure/gpt-35-turbo")["litellm_provider"] == "azure"


def test_unmapped_model_error_says_what_litellm_says():
    for call in (lambda: litellm.get_model_info("no-such-model-x"),
                 lambda: cost_per_token(model="no-such-model-x", prompt_tokens=1, completion_tokens=1),
                 lambda: get_max_tokens("no-such-model-x")):
        with pytest.raises(Exception, match="This model isn't mapped yet"):
            call()


async def test_global_max_budget(upstream, monkeypatch):
    """docs/budget_manager.md: litellm.max_budget stops calls once litellm._current_cost,
    the cost of the calls so far (streams included), is over it."""
    monkeypatch.setattr(litellm, "max_budget", 1e-9)
    monkeypatch.setattr(litellm, "_current_cost", 0.0)
    call = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hey"}],
            "api_base": upstream.url + "/v1", "api_key": "sk-x"}
    async for _ in await litellm.acompletion(**call, stream=True):
        pass
    spent = litellm._current_cost
    assert spent > 0
    with pytest.raises(litellm.BudgetExceededError) as err:
        litellm.completion(**call)
    assert err.value.current_cost == spent and err.value.max_budget == 1e-9
    assert len(upstream.chat_requests) == 1  # refused before going out
    monkeypatch.setattr(litellm, "max_budget", None)
    assert litellm.completion(**call).choices


@pytest.mark.parametrize("model,prices,window", [
    ("gpt-4-32k", (6e-05, 0.00012), (32768, 4096)),
    ("gpt-3.5-turbo-instruct", (1.5e-06, 2e-06), (4096, 4096)),
    ("bedrock/anthropic.claude-v2", (8e-06, 2.4e-05), (100000, 8191)),
    ("bedrock/anthropic.claude-v2:1", (8e-06, 2.4e-05), (100000, 8191)),
    ("bedrock/anthropic.claude-instant-v1", (8e-07, 2.4e-06), (100000, 8191)),
])
def test_legacy_models_users_still_configure_are_priced(model, prices, window):
    """LiteLLM's model_cost prices gpt-4-32k, gpt-3.5-turbo-instruct and Bedrock's Claude 2 /
    Instant; a gateway configured with them must not record 0 spend."""
    assert cost_per_token(model=model, prompt_tokens=1000, completion_tokens=100) == pytest.approx(
        (1000 * prices[0], 100 * prices[1]))
    info = litellm.get_model_info(model)
    assert (info["max_input_tokens"], info["max_output_tokens"]) == window
    assert completion_cost(completion_response=response(model.split("/", 1)[-1], 21, 17)) == pytest.approx(
        21 * prices[0] + 17 * prices[1])


def test_gpt_35_turbo_instruct_text_completion_cost(upstream):
    answer = litellm.text_completion(model="text-completion-openai/gpt-3.5-turbo-instruct", prompt="Hey!",
                                     api_base=upstream.url + "/v1", api_key="sk-x")
    usage = answer.usage
    assert usage.prompt_tokens > 0
    assert completion_cost(completion_response=answer) == pytest.approx(
        usage.prompt_tokens * 1.5e-06 + usage.completion_tokens * 2e-06)
