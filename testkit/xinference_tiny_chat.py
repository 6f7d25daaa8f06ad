"""Make a tiny chat model in FOLDER: `python xinference_tiny_chat.py FOLDER` (the Xinference
environment's python: torch, transformers and tokenizers live there).

A byte-level BPE tokenizer trained on a few sentences, with ChatML special tokens and a chat
template, and a randomly initialised Qwen2ForCausalLM small enough to load in a second on a
CPU (about 400 KB). It answers with random text: enough to launch it in Xinference and chat.
Prints a JSON summary: the folder, its size, the vocabulary size and the end-of-turn token id.
"""

import json
import sys
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SENTENCES = [
    "Hello! How can I help you today?",
    "The control panel deploys a chatbot stack to a GPU server.",
    "Xinference serves embedding and chat models over an OpenAI-compatible API.",
    "A knowledge base answers questions from uploaded documents.",
    "The quick brown fox jumps over the lazy dog.",
    "Thank you, goodbye.",
]


def make(folder: Path) -> dict:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(SENTENCES * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)

    end_of_turn = fast.convert_tokens_to_ids("<|im_end|>")
    config = Qwen2Config(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=fast.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=end_of_turn,
        pad_token_id=fast.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = end_of_turn
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(folder, safe_serialization=True)
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    return {
        "folder": str(folder),
        "size_bytes": size,
        "vocab_size": len(fast),
        "end_of_turn_id": end_of_turn,
    }


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.splitlines()[0])
    print(json.dumps(make(Path(sys.argv[1]))))
