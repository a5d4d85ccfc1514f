"""`ember serve` driven by the official openai Python client, unchanged: models, a chat reply
whole and streamed (with usage), a text completion, and errors raised as the client's own
exception types. Run by crates/cli/tests/serve.rs: python3 openai_client.py BASE_URL."""
import sys

import openai

base = sys.argv[1]
client = openai.OpenAI(base_url=base, api_key="k")

models = client.models.list()
model = models.data[0].id
msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello! Who are you?"}]

r = client.chat.completions.create(model=model, messages=msgs, temperature=0.7, seed=11, max_tokens=10)
assert r.object == "chat.completion", r
assert r.choices[0].message.role == "assistant"
assert r.choices[0].finish_reason in ("stop", "length")
assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
assert r.system_fingerprint.startswith("fp_")

stream = client.chat.completions.create(model=model, messages=msgs, temperature=0.7, seed=11,
                                        max_tokens=10, stream=True,
                                        stream_options={"include_usage": True})
text, usage, finish = "", None, None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for c in chunk.choices:
        text += c.delta.content or ""
        finish = c.finish_reason or finish
assert text == r.choices[0].message.content, (text, r.choices[0].message.content)
assert usage.completion_tokens == r.usage.completion_tokens
assert finish == r.choices[0].finish_reason

c = client.completions.create(model=model, prompt="ROMEO:", max_tokens=5, temperature=0)
assert c.object == "text_completion" and isinstance(c.choices[0].text, str)

try:
    client.chat.completions.create(model=model, messages=msgs, temperature=5)
    raise SystemExit("temperature 5 was accepted")
except openai.BadRequestError as e:
    assert e.body["param"] == "temperature", e.body

try:
    client.chat.completions.create(model=model, messages=msgs, max_tokens=100000)
    raise SystemExit("an over-long request was accepted")
except openai.BadRequestError as e:
    assert e.body["code"] == "context_length_exceeded", e.body

bad = openai.OpenAI(base_url=base, api_key="wrong")
try:
    bad.models.list()
    raise SystemExit("a wrong key was accepted")
except openai.AuthenticationError:
    pass
print("openai client: ok")
