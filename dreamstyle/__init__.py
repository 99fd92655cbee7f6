"""dreamstyle core: plain PyTorch, never imports ComfyUI."""
