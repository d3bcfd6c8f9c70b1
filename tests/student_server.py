"""A real OpenAI-compatible HTTP server for the student, with vLLM's runtime LoRA loading.

vLLM needs a GPU, so tests serve the tiny student with this instead: the same
two endpoints gaptune uses (`/v1/chat/completions` with image data URLs,
`/v1/load_lora_adapter` with `lora_name` and `lora_path`), and the same
division of work as vLLM: the server owns the chat template and the image
decoding. It builds prompts from the processor alone, never from gaptune's
prompt code, so agreement with the in-process path is a real check.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from PIL import Image
from teacher_server import LocalServer, completion_body
from transformers import AutoModelForImageTextToText, AutoProcessor


def _decode(url: str) -> Image.Image:
    header, _, data = url.partition(",")
    if not header.startswith("data:image/"):
        raise ValueError(f"expected an image data URL, got {url[:40]!r}")
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


class StudentServer(LocalServer):
    """Serves a student directory under `model`; adapters loaded at run time are served under their names."""

    def __init__(self, student: Path, *, model: str = "student") -> None:
        self.student = student
        self.model = model
        self.processor = AutoProcessor.from_pretrained(student, local_files_only=True)
        self.models: dict[str, Any] = {model: self._base()}
        self.loads: Counter[str] = Counter()  # load_lora_adapter calls per name
        self.completions: Counter[str] = Counter()  # chat completions per model name
        self._lock = threading.Lock()
        super().__init__()

    def _base(self) -> Any:
        return AutoModelForImageTextToText.from_pretrained(self.student, local_files_only=True).eval()

    def load(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name, path = body["lora_name"], body["lora_path"]
        with self._lock:
            self.loads[name] += 1
            if name in self.models:
                return 400, {"error": {"message": f"The lora adapter '{name}' has already been loaded."}}
            if not (Path(path) / "adapter_config.json").is_file():
                return 404, {"error": {"message": f"no adapter at {path}"}}
            self.models[name] = PeftModel.from_pretrained(self._base(), path).eval()
        return 200, {"message": f"Success: LoRA adapter '{name}' added successfully."}

    def complete(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        model = self.models.get(body["model"])
        if model is None:
            return 404, {"error": {"message": f"The model `{body['model']}` does not exist.", "type": "NotFoundError"}}
        images = []
        messages = []
        for message in body["messages"]:
            parts = message["content"]
            if isinstance(parts, str):
                parts = [{"type": "text", "text": parts}]
            content = []
            for part in parts:
                if part["type"] == "image_url":
                    images.append(_decode(part["image_url"]["url"]))
                    content.append({"type": "image"})
                else:
                    content.append(part)
            messages.append({"role": message["role"], "content": content})
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = self.processor(text=[text], images=images or None, return_tensors="pt", add_special_tokens=False)
        with self._lock, torch.inference_mode():
            self.completions[body["model"]] += 1
            generated = model.generate(**inputs, max_new_tokens=body.get("max_tokens", 16), do_sample=False)
        answer = self.processor.batch_decode(generated[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
        return 200, completion_body(answer.strip(), body["model"])

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path == "/v1/load_lora_adapter":
                    status, payload = server.load(body)
                elif self.path == "/v1/chat/completions":
                    status, payload = server.complete(body)
                else:
                    status, payload = 404, {"error": {"message": f"no route {self.path}"}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
