"""stylemotif core: plain PyTorch, never imports ComfyUI."""
