"""Broadcasting a condition batch onto the UNet batch, which ComfyUI lays out as [chunk_0 frames, chunk_1 frames, ...]."""


def tile_to_batch(x, n, what):
    """Repeat X (batch b) to batch N when b divides N (b == 1 broadcasts); otherwise a clear error."""
    b = x.shape[0]
    if b == n:
        return x
    if n % b:
        raise ValueError(f"{what}: batch of {b} cannot be spread over a UNet batch of {n} (expected 1 or a divisor)")
    return x.repeat(n // b, *([1] * (x.ndim - 1)))
