"""Golden logits for tests/lora.rs: PEFT loads steerbench's LoRA export onto the Hugging Face
model and computes the adapted logits.

steerbench writes the exports first (the test checks they are exactly what `save_peft`
writes today):

    STEERBENCH_WRITE_LORA_EXPORT=1 cargo test -p steerbench-model --test lora peft_loads
    python tests/golden/make_lora_golden.py     # PyPI torch, transformers, peft, safetensors

For each tiny model it reads tests/golden/lora/<name>/ (adapter_model.safetensors,
adapter_config.json) with `peft.PeftModel.from_pretrained`, runs the test's two token
sequences one at a time (no padding) and writes tests/golden/lora/<name>.golden.safetensors
with `logits.<row>` (len, vocab), float32.
"""
import os

import torch
from peft import PeftModel
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = {
    "llama_gqa": os.path.join(HERE, "llama_gqa"),
    "gpt2": os.path.join(HERE, "gpt2"),
    "phi3": os.path.join(HERE, "families", "phi3"),
    "gemma3": os.path.join(HERE, "families", "gemma3"),
}
# The sequences of tests/lora.rs `batch()`.
SEQUENCES = [[3, 17, 5, 9, 22, 4, 11], [8, 2, 30, 6]]


def main():
    torch.manual_seed(0)
    for name, model_dir in MODELS.items():
        export = os.path.join(HERE, "lora", name)
        base = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=torch.float32, attn_implementation="eager")
        model = PeftModel.from_pretrained(base, export).eval()
        n_lora = sum(1 for n, _ in model.named_parameters() if "lora_A" in n)
        out = {}
        with torch.no_grad():
            for r, ids in enumerate(SEQUENCES):
                logits = model(input_ids=torch.tensor([ids])).logits[0]
                out[f"logits.{r}"] = logits.float().contiguous()
        save_file(out, os.path.join(HERE, "lora", f"{name}.golden.safetensors"))
        print(f"{name}: {n_lora} LoRA pairs loaded, logits {tuple(out['logits.0'].shape)}")


if __name__ == "__main__":
    main()
