"""OpenAI's Responses API over chat completions: pure translation, no I/O.

* :func:`to_chat` — a Responses request (``input`` string or items, ``instructions``,
  function ``tools``, ``tool_choice``, ``text.format``, ``reasoning``, ``max_output_tokens``…)
  plus the stored conversation of ``previous_response_id`` → chat ``messages`` and params.
* :func:`to_response` — a chat completion → a ``response`` object.
* :class:`ResponseEvents` — chat chunks → the Responses stream events, in OpenAI's order and
  with ``sequence_number`` s: ``response.created``, ``response.in_progress``, per output item
  ``response.output_item.added`` … ``response.output_item.done`` (text through
  ``response.content_part.*`` and ``response.output_text.*``, calls through
  ``response.function_call_arguments.*``, reasoning summaries through
  ``response.reasoning_summary_*``), then ``response.completed`` / ``response.incomplete``, or
  ``error`` + ``response.failed``.

Both the library (:func:`llmrelay.responses`) and the gateway's ``/v1/responses`` use these.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["ResponsesRequestError", "ResponsesCall", "to_chat", "to_response", "ResponseEvents",
           "conversation_after"]

_dumps = orjson.dumps

#: Responses request keys with the same meaning in chat completions.
_SAME = ("temperature", "top_p", "parallel_tool_calls", "user")
#: Request keys accepted and echoed (or ignored) but not sent upstream. OpenAI's service hints
#: (``prompt_cache_key``, ``safety_identifier``, ``service_tier``…) are among them: other providers
#: refuse them, and a translated request may go to any provider.
_ACCEPTED = frozenset({"model", "input", "instructions", "tools", "tool_choice", "text", "reasoning",
                       "max_output_tokens", "previous_response_id", "store", "stream", "metadata",
                       "truncation", "include", "background", "stream_options", "prompt", "conversation",
                       "max_tool_calls", "service_tier", "safety_identifier", "prompt_cache_key", "top_logprobs",
                       *_SAME})


class ResponsesRequestError(ValueError):
    """A Responses request that cannot be translated; ``param`` names the field."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
        self.code = code


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


@dataclass(slots=True)
class ResponsesCall:
    """A translated request: what to call, and what the answer must echo."""

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    #: The conversation without ``instructions`` (what a later ``previous_response_id`` continues).
    history: list[dict[str, Any]]
    echo: dict[str, Any] = field(default_factory=dict)
    store: bool = True
    id: str = field(default_factory=lambda: _new_id("resp_"))
    created_at: int = field(default_factory=lambda: int(time.time()))


# ====================================================================== request
def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return ""


def _part(part: Any, where: str) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if not isinstance(part, dict):
        raise ResponsesRequestError(f"{where}: a content part must be an object.", "input")
    ptype = part.get("type")
    if ptype in ("input_text", "output_text", "text"):
        return {"type": "text", "text": part.get("text") or ""}
    if ptype == "refusal":
        return {"type": "text", "text": part.get("refusal") or ""}
    if ptype == "input_image":
        url = part.get("image_url")
        if not url:
            raise ResponsesRequestError(f"{where}: input_image needs an 'image_url' (file ids are not supported).",
                                        "input")
        image = {"url": url}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if ptype == "input_file":
        data = part.get("file_data") or part.get("file_url")
        if not data:
            raise ResponsesRequestError(f"{where}: input_file needs 'file_data' or 'file_url'.", "input")
        file = {"file_data": data}
        if part.get("filename"):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    raise ResponsesRequestError(f"{where}: content part type {ptype!r} is not supported.", "input")


def _content(content: Any, where: str) -> Any:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise ResponsesRequestError(f"{where}.content: must be a string or an array of parts.", "input")
    parts = [_part(p, f"{where}.content[{i}]") for i, p in enumerate(content)]
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _output_text(output: Any) -> Any:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        parts = [_part(p, "function_call_output.output") for p in output]
        if all(p["type"] == "text" for p in parts):
            return "".join(p["text"] for p in parts)
        return parts
    return _dumps(output).decode()


#: Marks ``encrypted_content`` of reasoning items made here: the provider's thinking blocks
#: (Anthropic signatures…) that must go back with the next turn, base64 of their JSON.
_STATE_PREFIX = "llmrelay.thinking:"


def thinking_state(blocks: list[dict[str, Any]]) -> str:
    """A reasoning item's ``encrypted_content`` carrying ``blocks``."""
    return _STATE_PREFIX + base64.b64encode(_dumps(blocks)).decode()


def _thinking_of(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str) and value.startswith(_STATE_PREFIX):
        try:
            blocks = orjson.loads(base64.b64decode(value[len(_STATE_PREFIX):]))
        except (binascii.Error, orjson.JSONDecodeError):
            return []
        return [b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else []
    return []  # another gateway's or OpenAI's own state: nothing a chat upstream can use


def _items(items: list[Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    reasoning: list[str] = []
    thinking: list[dict[str, Any]] = []

    def attach(message: dict[str, Any]) -> None:
        """Reasoning items belong to the assistant turn that follows them."""
        nonlocal reasoning, thinking
        if reasoning:
            message["reasoning_content"] = "".join(reasoning)
            reasoning = []
        if thinking:
            message["thinking_blocks"] = thinking
            thinking = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise ResponsesRequestError(f"{where}: an input item must be an object.", "input")
        itype = item.get("type") or ("message" if "role" in item else None)
        if itype == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise ResponsesRequestError(f"{where}.role: {role!r} is not one of user, assistant, system, developer.",
                                            "input")
            if role == "assistant":
                message = {"role": "assistant", "content": _text_of(item.get("content"))}
                attach(message)
            else:
                message = {"role": role, "content": _content(item.get("content"), where)}
            messages.append(message)
        elif itype == "function_call":
            call = {"id": item.get("call_id") or item.get("id") or "", "type": "function",
                    "function": {"name": item.get("name") or "", "arguments": item.get("arguments") or "{}"}}
            last = messages[-1] if messages else None
            # Calls after an assistant message (or after other calls) belong to that turn.
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                message = {"role": "assistant", "content": None, "tool_calls": [call]}
                attach(message)
                messages.append(message)
        elif itype == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id") or "",
                             "content": _output_text(item.get("output"))})
        elif itype == "reasoning":
            reasoning.extend(s.get("text") or "" for s in item.get("summary") or () if isinstance(s, dict))
            thinking.extend(_thinking_of(item.get("encrypted_content")))
        else:
            raise ResponsesRequestError(f"{where}: input item type {itype!r} is not supported by this gateway.",
                                        "input")
    return messages


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise ResponsesRequestError("'tools' must be an array.", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else tool
            raise ResponsesRequestError(f"tools[{i}]: tool type {kind!r} is not supported (function tools only).",
                                        "tools")
        function = {"name": tool.get("name") or "",
                    "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
        if tool.get("description"):
            function["description"] = tool["description"]
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name") or ""}}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        return choice.get("mode") or "auto"
    raise ResponsesRequestError(f"tool_choice {choice!r} is not supported.", "tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, dict):
        return None
    fmt = text.get("format")
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {"name": fmt.get("name") or "response", "schema": fmt.get("schema") or {}}
        if fmt.get("strict") is not None:
            schema["strict"] = fmt["strict"]
        if fmt.get("description"):
            schema["description"] = fmt["description"]
        return {"type": "json_schema", "json_schema": schema}
    raise ResponsesRequestError(f"text.format type {fmt.get('type')!r} is not supported.", "text")


def to_chat(data: dict[str, Any], model: str, history: list[dict[str, Any]] | None = None) -> ResponsesCall:
    """Translate a Responses request body (``model`` already taken out) to a chat call.

    ``history`` is the stored conversation of ``previous_response_id`` (None for a new one).
    """
    raw_input = data.get("input")
    if raw_input is None:
        raise ResponsesRequestError("Missing required parameter: 'input'.", "input")
    if isinstance(raw_input, str):
        new = [{"role": "user", "content": raw_input}]
    elif isinstance(raw_input, list):
        new = _items(raw_input)
    else:
        raise ResponsesRequestError("'input' must be a string or an array of input items.", "input")
    if data.get("background"):
        raise ResponsesRequestError("background responses are not supported by this gateway.", "background")
    conversation = [*(history or ()), *new]
    messages = list(conversation)
    instructions = data.get("instructions")
    if instructions:
        messages.insert(0, {"role": "system", "content": instructions if isinstance(instructions, str)
                            else _text_of(instructions)})
    if not messages:
        raise ResponsesRequestError("'input' must not be empty.", "input")
    params: dict[str, Any] = {}
    for key in _SAME:
        value = data.get(key)
        if value is not None:
            params[key] = value
    if data.get("max_output_tokens") is not None:
        params["max_completion_tokens"] = data["max_output_tokens"]
    tools = data.get("tools")
    if tools:
        params["tools"] = _tools(tools)
        if data.get("tool_choice") is not None:
            params["tool_choice"] = _tool_choice(data["tool_choice"])
    response_format = _response_format(data.get("text"))
    if response_format is not None:
        params["response_format"] = response_format
    text = data.get("text")
    if isinstance(text, dict) and text.get("verbosity"):
        params["verbosity"] = text["verbosity"]
    reasoning = data.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        params["reasoning_effort"] = reasoning["effort"]
    echo = {
        "instructions": instructions,
        "max_output_tokens": data.get("max_output_tokens"),
        "metadata": data.get("metadata") or {},
        "parallel_tool_calls": data.get("parallel_tool_calls", True),
        "previous_response_id": data.get("previous_response_id"),
        "reasoning": {"effort": (reasoning or {}).get("effort"), "summary": (reasoning or {}).get("summary")}
        if isinstance(reasoning, dict) else {"effort": None, "summary": None},
        "temperature": data.get("temperature"),
        "text": {"format": (text or {}).get("format") or {"type": "text"}} if isinstance(text, dict)
        else {"format": {"type": "text"}},
        "tool_choice": data.get("tool_choice") or "auto",
        "tools": tools or [],
        "top_p": data.get("top_p"),
        "truncation": data.get("truncation") or "disabled",
        "user": data.get("user"),
    }
    store = data.get("store")
    return ResponsesCall(model, messages, params, conversation, echo, store is not False)


# ====================================================================== answer
def _usage(usage: Any) -> dict[str, Any] | None:
    if usage is None:
        return None
    get = usage.get if isinstance(usage, dict) else usage.__dict__.get

    def detail(name: str, key: str) -> int:
        value = get(name)
        if value is None:
            return 0
        return ((value.get if isinstance(value, dict) else value.__dict__.get)(key)) or 0

    prompt = get("prompt_tokens") or 0
    completion = get("completion_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": detail("prompt_tokens_details", "cached_tokens")},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": detail("completion_tokens_details", "reasoning_tokens")},
        "total_tokens": get("total_tokens") or prompt + completion,
    }


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if text or
            status == "completed" else []}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}


def _reasoning_item(item_id: str, text: str | None, blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    item = {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}] if text else []}
    if blocks:
        item["encrypted_content"] = thinking_state(blocks)
    return item


def _envelope(call: ResponsesCall, model: str, status: str, output: list[dict[str, Any]], usage: Any,
              error: dict[str, Any] | None = None, incomplete: str | None = None) -> dict[str, Any]:
    out = {"id": call.id, "object": "response", "created_at": call.created_at, "status": status,
           "background": False, "error": error,
           "incomplete_details": {"reason": incomplete} if incomplete else None,
           "model": model, "output": output, "store": call.store, "usage": _usage(usage)}
    out.update(call.echo)
    return out


def to_response(result: Any, call: ResponsesCall, model: str) -> dict[str, Any]:
    """The ``response`` object for a non-streamed chat completion."""
    choice = result.choices[0]
    message = choice.message
    output: list[dict[str, Any]] = []
    reasoning = message.__dict__.get("reasoning_content")
    blocks = message.__dict__.get("thinking_blocks")
    if reasoning or blocks:
        output.append(_reasoning_item(_new_id("rs_"), reasoning, blocks))
    if message.content is not None or not message.__dict__.get("tool_calls"):
        output.append(_message_item(_new_id("msg_"), message.content or ""))
    for tc in message.__dict__.get("tool_calls") or ():
        function = tc.function
        output.append(_call_item(_new_id("fc_"), tc.id or _new_id("call_"), function.name or "",
                                 function.arguments or ""))
    incomplete = "max_output_tokens" if choice.finish_reason == "length" else None
    return _envelope(call, model, "incomplete" if incomplete else "completed", output,
                     result.__dict__.get("usage"), incomplete=incomplete)


def conversation_after(call: ResponsesCall, response: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation a later ``previous_response_id`` continues: the request's plus the output."""
    return [*call.history, *_items(response.get("output") or [])]


class ResponseEvents:
    """Chat chunks → Responses stream events (dicts). One per streamed response.

    Items are opened in the order their first delta arrives and closed when another kind of
    output starts (reasoning, then text, then calls, as chat models produce them); all still
    open items are closed at the end.
    """

    __slots__ = ("call", "model", "seq", "output", "usage", "finish", "_text", "_text_item", "_reasoning",
                 "_reasoning_item", "_thinking", "_calls", "_open", "failed", "response")

    def __init__(self, call: ResponsesCall, model: str) -> None:
        self.call = call
        self.model = model
        self.seq = 0
        self.output: list[dict[str, Any]] = []
        self.usage: Any = None
        self.finish: str | None = None
        self._text: list[str] = []
        self._text_item: dict[str, Any] | None = None
        self._reasoning: list[str] = []
        self._reasoning_item: dict[str, Any] | None = None
        self._thinking: list[dict[str, Any]] = []  # the provider's thinking blocks (signatures)
        self._calls: dict[int, tuple[dict[str, Any], list[str], int]] = {}
        self._open: str | None = None  # "reasoning" | "text" | "call:<index>"
        self.failed = False
        self.response: dict[str, Any] | None = None  # the final response object

    def _event(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        body["type"] = kind
        body["sequence_number"] = self.seq
        self.seq += 1
        return body

    def start(self) -> list[dict[str, Any]]:
        """``response.created`` and ``response.in_progress``."""
        snapshot = _envelope(self.call, self.model, "in_progress", [], None)
        return [self._event("response.created", {"response": snapshot}),
                self._event("response.in_progress", {"response": dict(snapshot)})]

    # ---------------------------------------------------------------- items
    def _add(self, item: dict[str, Any], out: list[dict[str, Any]]) -> int:
        index = len(self.output)
        self.output.append(item)
        out.append(self._event("response.output_item.added", {"output_index": index, "item": dict(item)}))
        return index

    def _close(self, out: list[dict[str, Any]]) -> None:
        kind = self._open
        if kind is None:
            return
        self._open = None
        if kind == "reasoning":
            item = self._reasoning_item
            text = "".join(self._reasoning)
            index = self.output.index(item)
            part = {"type": "summary_text", "text": text}
            out.append(self._event("response.reasoning_summary_text.done",
                                   {"item_id": item["id"], "output_index": index, "summary_index": 0, "text": text}))
            out.append(self._event("response.reasoning_summary_part.done",
                                   {"item_id": item["id"], "output_index": index, "summary_index": 0, "part": part}))
            item["summary"] = [part]
            if self._thinking:
                item["encrypted_content"] = thinking_state(self._thinking)
            out.append(self._event("response.output_item.done", {"output_index": index, "item": item}))
        elif kind == "text":
            item = self._text_item
            text = "".join(self._text)
            index = self.output.index(item)
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            out.append(self._event("response.output_text.done", {"item_id": item["id"], "output_index": index,
                                                                 "content_index": 0, "text": text, "logprobs": []}))
            out.append(self._event("response.content_part.done", {"item_id": item["id"], "output_index": index,
                                                                  "content_index": 0, "part": part}))
            item["content"] = [part]
            item["status"] = "completed"
            out.append(self._event("response.output_item.done", {"output_index": index, "item": item}))
        else:
            item, pieces, index = self._calls[int(kind[5:])]
            arguments = "".join(pieces)
            item["arguments"] = arguments
            item["status"] = "completed"
            out.append(self._event("response.function_call_arguments.done",
                                   {"item_id": item["id"], "output_index": index, "name": item["name"],
                                    "arguments": arguments}))
            out.append(self._event("response.output_item.done", {"output_index": index, "item": item}))

    def chunk(self, chunk: Any) -> list[dict[str, Any]]:
        """The events for one chat chunk."""
        out: list[dict[str, Any]] = []
        usage = chunk.__dict__.get("usage")
        if usage is not None:
            self.usage = usage
        for choice in chunk.choices:
            if choice.index:
                continue  # one output per response
            delta = choice.delta.__dict__
            reasoning = delta.get("reasoning_content")
            if reasoning:
                self._reasoning_delta(reasoning, out)
            blocks = delta.get("thinking_blocks")
            if blocks:
                self._thinking.extend(blocks)
                if self._reasoning_item is None:  # e.g. redacted thinking only
                    self._reasoning_delta("", out)
            text = delta.get("content")
            if text:
                self._text_delta(text, out)
            for tc in delta.get("tool_calls") or ():
                self._call_delta(tc, out)
            if choice.finish_reason:
                self.finish = choice.finish_reason
        return out

    def _reasoning_delta(self, text: str, out: list[dict[str, Any]]) -> None:
        if self._open != "reasoning":
            if self._reasoning_item is not None:  # reasoning after other output: appended to the same item
                return
            self._close(out)
            self._reasoning_item = item = _reasoning_item(_new_id("rs_"), None)
            index = self._add(item, out)
            out.append(self._event("response.reasoning_summary_part.added",
                                   {"item_id": item["id"], "output_index": index, "summary_index": 0,
                                    "part": {"type": "summary_text", "text": ""}}))
            self._open = "reasoning"
        item = self._reasoning_item
        self._reasoning.append(text)
        out.append(self._event("response.reasoning_summary_text.delta",
                               {"item_id": item["id"], "output_index": len(self.output) - 1, "summary_index": 0,
                                "delta": text}))

    def _text_delta(self, text: str, out: list[dict[str, Any]]) -> None:
        if self._open != "text":
            if self._text_item is not None:  # text after a call: the client cannot reopen an item
                self._text.append(text)
                return
            self._close(out)
            self._text_item = item = _message_item(_new_id("msg_"), "", status="in_progress")
            index = self._add(item, out)
            out.append(self._event("response.content_part.added",
                                   {"item_id": item["id"], "output_index": index, "content_index": 0,
                                    "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}))
            self._open = "text"
        item = self._text_item
        self._text.append(text)
        out.append(self._event("response.output_text.delta",
                               {"item_id": item["id"], "output_index": len(self.output) - 1, "content_index": 0,
                                "delta": text, "logprobs": []}))

    def _call_delta(self, tc: Any, out: list[dict[str, Any]]) -> None:
        index = tc.index or 0
        function = tc.function
        arguments = function.arguments if function is not None else None
        entry = self._calls.get(index)
        if entry is None:
            self._close(out)
            item = _call_item(_new_id("fc_"), tc.id or _new_id("call_"), (function.name if function else None) or "",
                              "", status="in_progress")
            position = self._add(item, out)
            entry = self._calls[index] = (item, [], position)
            self._open = f"call:{index}"
        item, pieces, position = entry
        if arguments:
            pieces.append(arguments)
            out.append(self._event("response.function_call_arguments.delta",
                                   {"item_id": item["id"], "output_index": position, "delta": arguments}))

    def end(self) -> list[dict[str, Any]]:
        """Close what is open, then ``response.completed`` (or ``response.incomplete``)."""
        if self.failed:
            return []
        out: list[dict[str, Any]] = []
        self._close(out)
        for index in sorted(self._calls):
            item = self._calls[index][0]
            if item["status"] != "completed":
                self._open = f"call:{index}"
                self._close(out)
        if self._thinking and self._reasoning_item is not None:  # blocks that came after the item closed
            self._reasoning_item["encrypted_content"] = thinking_state(self._thinking)
        if self._text_item is not None and self._text_item["status"] != "completed":
            self._open = "text"
            self._close(out)
        incomplete = "max_output_tokens" if self.finish == "length" else None
        self.response = _envelope(self.call, self.model, "incomplete" if incomplete else "completed", self.output,
                                  self.usage, incomplete=incomplete)
        out.append(self._event("response.incomplete" if incomplete else "response.completed",
                               {"response": self.response}))
        return out

    def error(self, code: str, message: str) -> list[dict[str, Any]]:
        """``error`` then ``response.failed``: the stream's last events."""
        self.failed = True
        failed = _envelope(self.call, self.model, "failed", self.output, self.usage,
                           error={"code": code, "message": message})
        return [self._event("error", {"code": code, "message": message, "param": None}),
                self._event("response.failed", {"response": failed})]
