"""hicast core: plain PyTorch, never imports ComfyUI."""
