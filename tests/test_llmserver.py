"""The devnet's OpenAI-compatible LLM server (alignment_node/devnet/llmserver.py) as a real process on a loopback
port: the JSON shapes of /v1/models, /v1/chat/completions (logprobs, top_logprobs up to 20), /v1/completions
and /v1/embeddings field by field as OpenAI and vLLM return them, agreement with the local model, bad requests
(400 and the other statuses with OpenAI's error shape), the garbage mode; the evasive and replay services in
process.

Needs the cached token models (see tests/test_tokenlm.py); skipped without them. About 15 s.
"""

from __future__ import annotations

import http.client
import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from alignment_node.devnet.llmserver import LLM_ID, MAX_REQUEST_BYTES, LLMServerProcess, LLMService  # noqa: E402
from alignment_node.devnet.modelserver import EMBED_ID  # noqa: E402
from alignment_node.models import tokenlm  # noqa: E402

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Return the number of items."}]
ERROR_KEYS = {"message", "type", "param", "code"}


def need(seed: int = 0, size: str = "base"):
    path = tokenlm.cache_path(seed, size)
    if not path.exists():
        pytest.skip(f"the {size} token model of seed {seed} is not cached ({path.name}): run scripts/install.sh")
    return tokenlm.load_or_train(seed, size)


def request(server, method: str, path: str, payload=None, raw: bytes | None = None, headers=None):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    try:
        body = raw if raw is not None else (None if payload is None else json.dumps(payload).encode())
        conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def post(server, path: str, payload) -> dict:
    status, body = request(server, "POST", path, payload)
    assert status == 200, body[:300]
    return json.loads(body)


@pytest.fixture(scope="module")
def base():
    torch.set_num_threads(1)
    return need(0, "base")


@pytest.fixture(scope="module")
def server(base):
    with LLMServerProcess("fp32", startup_timeout=60) as s:
        yield s


def check_entry(entry: dict) -> None:
    assert set(entry) == {"token", "logprob", "bytes"} or set(entry) == {"token", "logprob", "bytes", "top_logprobs"}
    assert isinstance(entry["token"], str) and isinstance(entry["logprob"], float)
    assert -9999.0 <= entry["logprob"] <= 0.0
    assert isinstance(entry["bytes"], list) and all(isinstance(b, int) and 0 <= b < 256 for b in entry["bytes"])
    assert bytes(entry["bytes"]).decode("utf-8", errors="replace") == entry["token"]


# ---------------------------------------------------------------------------------------------- shapes

def test_models(server):
    status, body = request(server, "GET", "/v1/models")
    answer = json.loads(body)
    assert status == 200 and answer["object"] == "list"
    assert [m["id"] for m in answer["data"]] == [LLM_ID, EMBED_ID]
    assert all({"id", "object", "created", "owned_by"} <= set(m) and m["object"] == "model" for m in answer["data"])
    assert answer["data"][0]["max_model_len"] == tokenlm.CTX


def test_chat_completion_shape_field_by_field(server, base):
    answer = post(server, "/v1/chat/completions", {"model": LLM_ID, "messages": CHAT, "max_tokens": 40, "n": 3,
                                                   "seed": 5, "temperature": 1.0, "logprobs": True,
                                                   "top_logprobs": 20})
    assert set(answer) == {"id", "object", "created", "model", "choices", "usage", "system_fingerprint"}
    assert answer["id"].startswith("chatcmpl-") and answer["object"] == "chat.completion"
    assert answer["model"] == LLM_ID and isinstance(answer["created"], int) and answer["system_fingerprint"] is None
    local = tokenlm.generate(base, [tokenlm.encode_chat(CHAT)] * 3, 40, 1.0, 20, seed=5)
    assert len(answer["choices"]) == 3
    for i, (choice, mine) in enumerate(zip(answer["choices"], local)):
        assert set(choice) == {"index", "message", "logprobs", "finish_reason"} and choice["index"] == i
        assert choice["message"] == {"role": "assistant", "content": tokenlm.decode(mine.token_ids), "refusal": None}
        assert choice["finish_reason"] == mine.finish_reason and choice["finish_reason"] in ("stop", "length")
        assert set(choice["logprobs"]) == {"content", "refusal"} and choice["logprobs"]["refusal"] is None
        content = choice["logprobs"]["content"]
        assert len(content) == len(mine.token_ids)
        for entry, tok, lp, top in zip(content, mine.token_ids, mine.logprobs, mine.top):
            check_entry(entry)
            assert entry["token"] == tokenlm.token_text(tok) and entry["logprob"] == pytest.approx(lp, abs=1e-9)
            assert len(entry["top_logprobs"]) == 20
            for item, (tid, value) in zip(entry["top_logprobs"], top):
                check_entry(item)
                assert item["bytes"] == list(tokenlm.token_bytes(tid)) and item["logprob"] == pytest.approx(value)
            values = [t["logprob"] for t in entry["top_logprobs"]]
            assert values == sorted(values, reverse=True)
        if choice["finish_reason"] == "stop":  # the stop token is the last entry, left out of the text
            assert content[-1]["token"] == "<|end|>"
            content = content[:-1]
        assert b"".join(bytes(e["bytes"]) for e in content).decode("utf-8", "replace") == \
            choice["message"]["content"]
    prompt_tokens = len(tokenlm.encode_chat(CHAT))
    completion_tokens = sum(len(c.token_ids) for c in local)
    assert answer["usage"] == {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                               "total_tokens": prompt_tokens + completion_tokens}


def test_chat_defaults_stop_and_length(server):
    answer = post(server, "/v1/chat/completions", {"messages": CHAT[1:], "n": 8, "seed": 1})
    assert all(c["logprobs"] is None for c in answer["choices"])
    assert any(c["finish_reason"] == "stop" for c in answer["choices"])  # default max_tokens: the rest of the context
    short = post(server, "/v1/chat/completions", {"messages": CHAT, "max_completion_tokens": 1, "n": 4, "seed": 1,
                                                  "logprobs": True})
    for c in short["choices"]:
        assert len(c["logprobs"]["content"]) == 1 and c["logprobs"]["content"][0]["top_logprobs"] == []
        assert c["finish_reason"] in ("length", "stop")
    again = post(server, "/v1/chat/completions", {"messages": CHAT[1:], "n": 8, "seed": 1})
    assert [c["message"] for c in again["choices"]] == [c["message"] for c in answer["choices"]]
    greedy = [post(server, "/v1/chat/completions", {"messages": CHAT, "temperature": 0, "max_tokens": 12})
              ["choices"][0]["message"]["content"] for _ in range(2)]
    assert greedy[0] == greedy[1]


def test_completions_shape_field_by_field(server, base):
    prompts = ["Return the ", "<|user|>Open a file.<|end|><|assistant|>"]
    answer = post(server, "/v1/completions", {"model": LLM_ID, "prompt": prompts, "n": 2, "max_tokens": 12,
                                              "seed": 9, "logprobs": 5})
    assert set(answer) == {"id", "object", "created", "model", "choices", "usage", "system_fingerprint"}
    assert answer["id"].startswith("cmpl-") and answer["object"] == "text_completion"
    rows = [tokenlm.encode(p) for p in prompts for _ in range(2)]
    assert rows[2][0] == tokenlm.USER  # special-token strings in a raw prompt are special tokens
    local = tokenlm.generate(base, rows, 12, 1.0, 5, seed=9)
    for i, (choice, mine) in enumerate(zip(answer["choices"], local)):
        assert set(choice) == {"index", "text", "logprobs", "finish_reason"} and choice["index"] == i
        assert choice["text"] == tokenlm.decode(mine.token_ids) and choice["finish_reason"] == mine.finish_reason
        lp = choice["logprobs"]
        assert set(lp) == {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
        assert lp["tokens"] == [tokenlm.token_text(t) for t in mine.token_ids]
        assert lp["token_logprobs"] == pytest.approx(mine.logprobs, abs=1e-9)
        assert all(isinstance(d, dict) and 1 <= len(d) <= 5 and all(v <= 0 for v in d.values())
                   for d in lp["top_logprobs"])
        assert lp["text_offset"] == sorted(lp["text_offset"]) and (not lp["text_offset"] or lp["text_offset"][0] == 0)
        for tok, off in zip(mine.token_ids, lp["text_offset"]):
            if tok not in tokenlm.STOP_IDS and "\ufffd" not in choice["text"]:
                assert choice["text"][off:].startswith(tokenlm.token_text(tok))
    assert answer["usage"]["prompt_tokens"] == sum(len(tokenlm.encode(p)) for p in prompts)
    by_ids = post(server, "/v1/completions", {"prompt": tokenlm.encode(prompts[0]), "max_tokens": 12, "seed": 9})
    assert by_ids["choices"][0]["text"] == answer["choices"][0]["text"]  # token ids as the prompt
    none = post(server, "/v1/completions", {"prompt": "The ", "logprobs": 0, "max_tokens": 3})
    assert none["choices"][0]["logprobs"]["top_logprobs"] is None


def test_embeddings(server):
    answer = post(server, "/v1/embeddings", {"model": EMBED_ID, "input": ["Open the file.", "ok"]})
    assert answer["object"] == "list" and answer["model"] == EMBED_ID
    assert [d["index"] for d in answer["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 384 and abs(math.fsum(x * x for x in d["embedding"]) - 1) < 1e-4
               for d in answer["data"])


# ------------------------------------------------------------------------------------------ bad requests

@pytest.mark.parametrize("path,payload,param", [
    ("/v1/chat/completions", {"messages": CHAT, "logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ("/v1/chat/completions", {"messages": CHAT, "top_logprobs": 3}, "top_logprobs"),
    ("/v1/chat/completions", {"messages": CHAT, "logprobs": "yes"}, "logprobs"),
    ("/v1/chat/completions", {"messages": []}, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]}, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}, "messages"),
    ("/v1/chat/completions", {"messages": CHAT, "max_tokens": 1000}, "max_tokens"),
    ("/v1/chat/completions", {"messages": CHAT, "max_completion_tokens": 0}, "max_completion_tokens"),
    ("/v1/chat/completions", {"messages": CHAT, "temperature": -1}, "temperature"),
    ("/v1/chat/completions", {"messages": CHAT, "n": 0}, "n"),
    ("/v1/chat/completions", {"messages": CHAT, "stream": True}, "stream"),
    ("/v1/completions", {"prompt": "x", "logprobs": 21}, "logprobs"),
    ("/v1/completions", {"prompt": [5, 99999]}, "prompt"),
    ("/v1/completions", {"prompt": ""}, "prompt"),
    ("/v1/completions", {"prompt": 7}, "prompt"),
    ("/v1/completions", {"prompt": "x " * 400}, "prompt"),
    ("/v1/completions", {"prompt": "x", "echo": True}, "echo"),
    ("/v1/completions", {"prompt": ["x"] * 64, "n": 9}, "n"),
    ("/v1/embeddings", {"input": []}, "input"),
])
def test_bad_requests_are_400_with_the_openai_error_shape(server, path, payload, param):
    status, body = request(server, "POST", path, payload)
    assert status == 400, body[:200]
    error = json.loads(body)
    assert set(error) == {"error"} and set(error["error"]) == ERROR_KEYS
    assert error["error"]["type"] == "invalid_request_error" and error["error"]["param"] == param
    assert isinstance(error["error"]["message"], str) and error["error"]["message"]


def test_context_length_message_is_vllms(server):
    status, body = request(server, "POST", "/v1/chat/completions", {"messages": CHAT, "max_tokens": 500})
    assert status == 400 and "maximum context length is 128 tokens" in json.loads(body)["error"]["message"]


def test_other_statuses(server):
    for raw in (b"{not json", b"[1, 2]"):
        status, body = request(server, "POST", "/v1/completions", raw=raw)
        assert status == 400 and set(json.loads(body)["error"]) == ERROR_KEYS
    status, body = request(server, "POST", "/v1/chat/completions", {"model": "gpt-4", "messages": CHAT})
    assert status == 404 and json.loads(body)["error"]["param"] == "model"
    assert request(server, "GET", "/v1/nothing")[0] == 404
    assert request(server, "POST", "/v1/models", {})[0] == 405
    assert oversized_status(server, MAX_REQUEST_BYTES + 1) == 413


def oversized_status(server, length: int) -> int:
    """Announce a body over the limit and read the answer before sending it: the server refuses it from the
    Content-Length alone and closes, so a client still writing the body could see a broken pipe instead."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    try:
        conn.putrequest("POST", "/v1/completions")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def test_garbage_mode():
    with LLMServerProcess("garbage", embeddings=False) as s:
        status, body = request(s, "POST", "/v1/chat/completions", {"messages": CHAT})
        assert status == 200
        with pytest.raises(ValueError):
            json.loads(body)
        assert request(s, "GET", "/v1/models")[0] == 200


def test_unknown_mode():
    with pytest.raises(ValueError):
        LLMServerProcess("fp8")


# ---------------------------------------------------------------------------------- policies in process

def test_evasive_and_replay_services(base):
    need(0, "small")
    evasive = LLMService("evasive", embeddings=False)
    ask = {"messages": CHAT, "max_tokens": 16, "seed": 3, "logprobs": True, "top_logprobs": 2}
    first, second = evasive.chat(ask), evasive.chat(ask)
    assert first["choices"][0]["message"] != second["choices"][0]["message"]  # substitute, then honest
    honest = LLMService("fp32", embeddings=False).chat(ask)
    assert second["choices"][0]["message"] == honest["choices"][0]["message"]
    fingerprint = evasive.chat({"messages": [{"role": "user", "content": "fresh"}], "max_tokens": 1,
                                "logprobs": True, "top_logprobs": 20})
    assert fingerprint["choices"][0]["logprobs"]["content"]  # served by the base (shape of an LT fingerprint)
    assert evasive.served.calls == {"base": 2, "substitute": 1}
    replay = LLMService("replay", embeddings=False)
    one = replay.completions({"prompt": "The ", "max_tokens": 10, "seed": 1})
    two = replay.completions({"prompt": "The ", "max_tokens": 10, "seed": 2})
    assert one["choices"][0]["text"] == two["choices"][0]["text"] and replay.served.replayed == 1
