"""The student: loading, prompting, batched evaluation, LoRA training."""
