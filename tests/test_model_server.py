"""The devnet's OpenAI-compatible model server (alignment_node/devnet/modelserver.py), as real processes on
loopback ports, over HTTP: an honest server's answers (shapes, byte round trip, agreement with the local
model and embedder), bad requests, a substituted model, substituted embeddings, and each bad-answer mode.

Needs the model cache (see tests/test_models_lm.py); about 30 s, most of it starting the model servers.
"""

from __future__ import annotations

import base64
import http.client
import json

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from alignment_node.devnet.modelserver import (  # noqa: E402
    EMBED_ID, HUGE_TOKENS, LM_ID, MAX_REQUEST_BYTES, ModelServerProcess)
from alignment_node.models import embed, lm, variants  # noqa: E402

TEXTS = list(embed.SAMPLE_TEXTS[:8])


def request(server, method: str, path: str, payload=None, raw: bytes | None = None):
    """(status, headers, body bytes) of one request on a fresh connection."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    try:
        body = raw if raw is not None else (None if payload is None else json.dumps(payload).encode())
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def post(server, path: str, payload) -> dict:
    status, _, body = request(server, "POST", path, payload)
    assert status == 200, body[:300]
    return json.loads(body)


@pytest.fixture(scope="module")
def base():
    torch.set_num_threads(1)
    return lm.load_or_train(0)


@pytest.fixture(scope="module")
def honest(base):
    with ModelServerProcess("honest", startup_timeout=30) as server:
        yield server


@pytest.fixture(scope="module")
def local_embedder():
    return embed.Embedder("honest")


# ----------------------------------------------------------------------------------------------- honest

def test_models(honest):
    answer = json.loads(request(honest, "GET", "/v1/models")[2])
    assert {m["id"] for m in answer["data"]} == {LM_ID, EMBED_ID}


def test_completions_shape_and_agreement_with_the_local_model(honest, base):
    prompts = ["Return the ", "This module "]
    answer = post(honest, "/v1/completions", {"model": LM_ID, "prompt": prompts, "n": 3, "max_tokens": 20,
                                               "temperature": 1.0, "seed": 123, "logprobs": 0})
    assert answer["object"] == "text_completion" and len(answer["choices"]) == 6
    rows = [p.encode() for p in prompts for _ in range(3)]
    local = lm.sample_batch(base, rows, 20, 1.0, seed=123)
    for i, (choice, (text, lps)) in enumerate(zip(answer["choices"], local)):
        assert choice["index"] == i and choice["finish_reason"] == "length"
        served = choice["text"].encode("latin-1")  # bytes round-trip
        assert served == text
        assert "".join(choice["logprobs"]["tokens"]).encode("latin-1") == served
        assert np.allclose(choice["logprobs"]["token_logprobs"], lps, atol=1e-4)
    assert answer["usage"]["completion_tokens"] == 120
    again = post(honest, "/v1/completions", {"prompt": prompts, "n": 3, "max_tokens": 20, "seed": 123})
    assert [c["text"] for c in again["choices"]] == [c["text"] for c in answer["choices"]]
    assert again["choices"][0]["logprobs"] is None
    unseeded = [post(honest, "/v1/completions", {"prompt": "The ", "max_tokens": 24})["choices"][0]["text"]
                for _ in range(3)]
    assert len(set(unseeded)) == 3


def test_non_ascii_bytes_round_trip(honest, base):
    prompt = "caf\u00e9 \u00ff\u0001"
    answer = post(honest, "/v1/completions", {"prompt": prompt, "max_tokens": 64, "temperature": 2.0, "seed": 9,
                                               "logprobs": 1})
    text = answer["choices"][0]["text"].encode("latin-1")
    assert text == lm.sample_batch(base, [prompt.encode("latin-1")], 64, 2.0, seed=9)[0][0]
    assert any(b >= 128 for b in text)  # hot enough to leave ASCII


def test_chat(honest):
    answer = post(honest, "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": [
            {"type": "text", "text": "hi"}]}, {"role": "user", "content": "again"}],
        "max_completion_tokens": 12, "n": 2, "logprobs": True, "seed": 1})
    assert answer["object"] == "chat.completion" and len(answer["choices"]) == 2
    message = answer["choices"][0]["message"]
    assert message["role"] == "assistant" and len(message["content"].encode("latin-1")) == 12
    content = answer["choices"][0]["logprobs"]["content"]
    assert bytes(b for c in content for b in c["bytes"]) == message["content"].encode("latin-1")
    assert all(c["logprob"] <= 0 for c in content)


def test_embeddings_match_the_local_model(honest, local_embedder):
    answer = post(honest, "/v1/embeddings", {"model": EMBED_ID, "input": TEXTS})
    vectors = np.array([d["embedding"] for d in answer["data"]], dtype=np.float32)
    assert vectors.shape == (len(TEXTS), embed.DIM) and [d["index"] for d in answer["data"]] == list(range(8))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embed.cosine_distance(vectors, local_embedder.embed(TEXTS, batch_size=1)).max() < 1e-5
    packed = post(honest, "/v1/embeddings", {"input": TEXTS, "encoding_format": "base64"})["data"]
    assert np.array_equal([np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in packed], vectors)


@pytest.mark.parametrize("path,payload,param", [
    ("/v1/completions", {"max_tokens": 4}, "prompt"),
    ("/v1/completions", {"prompt": "a", "max_tokens": 10 ** 6}, "max_tokens"),
    ("/v1/completions", {"prompt": "a", "temperature": "hot"}, "temperature"),
    ("/v1/completions", {"prompt": ["a"] * 64, "n": 9}, "n"),
    ("/v1/completions", {"prompt": "a", "stream": True}, "stream"),
    ("/v1/chat/completions", {"messages": [{"role": "user"}]}, "messages"),
    ("/v1/embeddings", {"input": [1, 2]}, "input"),
    ("/v1/embeddings", {"input": "a", "dimensions": 3}, "dimensions"),
])
def test_bad_requests_get_400_naming_the_field(honest, path, payload, param):
    status, _, body = request(honest, "POST", path, payload)
    assert status == 400 and json.loads(body)["error"]["param"] == param


def test_bad_bodies_and_routes(honest):
    assert request(honest, "POST", "/v1/completions", raw=b"{not json")[0] == 400
    assert request(honest, "POST", "/v1/completions", raw=b"[1, 2]")[0] == 400
    assert request(honest, "POST", "/v1/completions", {"model": "gpt-9", "prompt": "a"})[0] == 404
    assert request(honest, "GET", "/nowhere")[0] == 404
    assert request(honest, "POST", "/v1/models", {})[0] == 405
    conn = http.client.HTTPConnection(honest.host, honest.port, timeout=10)  # refused before the body is sent
    conn.putrequest("POST", "/v1/completions")
    conn.putheader("Content-Length", str(MAX_REQUEST_BYTES + 1))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    assert request(honest, "GET", "/v1/models")[0] == 200  # still serving


# -------------------------------------------------------------------------------------------- substitutes

def test_substituted_model_answers_differently(base):
    with ModelServerProcess("finetuned", embeddings=False, startup_timeout=30) as server:
        answer = post(server, "/v1/completions", {"prompt": ["Return the ", "If the "], "n": 4, "max_tokens": 32,
                                                   "seed": 5, "logprobs": 0})
        assert request(server, "POST", "/v1/embeddings", {"input": "a"})[0] == 404
    texts = [c["text"].encode("latin-1") for c in answer["choices"]]
    honest_texts = [t for t, _ in lm.sample_batch(base, [b"Return the "] * 4 + [b"If the "] * 4, 32, 1.0, seed=5)]
    finetuned = variants.make_variant("finetuned", base)
    assert texts == [t for t, _ in finetuned.sample_batch([b"Return the "] * 4 + [b"If the "] * 4, 32, 1.0, 5)]
    assert sum(a != b for a, b in zip(texts, honest_texts)) >= 4


@pytest.mark.parametrize("mode,low,high", [("embed-noise", 1e-4, 0.05), ("embed-other", 0.01, 1.0)])
def test_substituted_embeddings_are_far_beyond_benign_noise(mode, low, high, local_embedder):
    with ModelServerProcess(mode, startup_timeout=30) as server:
        answer = post(server, "/v1/embeddings", {"input": TEXTS})
        completion = post(server, "/v1/completions", {"prompt": "The ", "max_tokens": 4, "seed": 1})
    vectors = np.array([d["embedding"] for d in answer["data"]], dtype=np.float32)
    distance = embed.cosine_distance(vectors, local_embedder.embed(TEXTS))
    assert low < distance.max() < high and distance.min() > low / 10, (mode, distance)
    assert len(completion["choices"][0]["text"]) == 4


# ------------------------------------------------------------------------------------------- bad answers

def test_garbage():
    with ModelServerProcess("garbage") as server:
        status, _, body = request(server, "POST", "/v1/completions", {"prompt": "a"})
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body)


def test_wrong_shape():
    with ModelServerProcess("wrong-shape") as server:
        completion = post(server, "/v1/completions", {"prompt": "a", "logprobs": 0})
        vectors = post(server, "/v1/embeddings", {"input": "a"})
        models = json.loads(request(server, "GET", "/v1/models")[2])
    assert not isinstance(completion["choices"][0]["text"], str)
    assert len(vectors["data"][0]["embedding"]) != embed.DIM
    assert not isinstance(models["data"], list)


def test_empty_choices():
    with ModelServerProcess("empty-choices") as server:
        assert post(server, "/v1/completions", {"prompt": "a"})["choices"] == []
        assert post(server, "/v1/chat/completions", {"messages": []})["choices"] == []
        assert post(server, "/v1/embeddings", {"input": "a"})["data"] == []


def test_huge_answer_is_streamed():
    with ModelServerProcess("huge") as server:
        status, headers, body = request(server, "POST", "/v1/completions", {"prompt": "a", "max_tokens": 4})
        assert status == 200 and headers.get("Transfer-Encoding") == "chunked"
        assert len(json.loads(body)["choices"][0]["text"]) == HUGE_TOKENS
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)  # a client that hangs up early
        conn.request("POST", "/v1/embeddings", body=b'{"input": "a"}')
        assert len(conn.getresponse().read(65536)) == 65536
        conn.close()
        assert request(server, "GET", "/v1/models")[0] == 200  # the server survives it


def test_refuse_cycles_429_503_error_object():
    with ModelServerProcess("refuse") as server:
        answers = [request(server, "POST", "/v1/completions", {"prompt": "a"}) for _ in range(3)]
    assert [a[0] for a in answers] == [429, 503, 200]
    assert answers[0][1].get("Retry-After") == "1"
    assert all("error" in json.loads(a[2]) for a in answers)


def test_unknown_mode_is_refused_before_starting():
    with pytest.raises(ValueError):
        ModelServerProcess("bogus")
