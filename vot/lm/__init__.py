"""The project's own small multimodal policy: tokenizer, model, decoding and training."""
