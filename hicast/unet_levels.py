"""Where adapter and temporal features enter an SD-family UNet encoder.

An SD UNet's input blocks are: conv_in (block 0), then per level `num_res_blocks[l]` ResBlocks, then a
Downsample (not after the last level). Features for level l are added after the level's last ResBlock,
as T2I-Adapter does; level l runs at 1/2^l of the latent grid with model_channels * channel_mult[l]
channels.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Level:
    block: int      # input-block index after which this level's feature is added
    channels: int   # UNet width there
    downscale: int  # 2 ** level, relative to the latent grid


def encoder_levels(model_channels, channel_mult, num_res_blocks):
    """The injection plan of an SD-family UNet config (num_res_blocks: int or per-level list)."""
    if isinstance(num_res_blocks, int):
        num_res_blocks = [num_res_blocks] * len(channel_mult)
    levels, block = [], 0
    for l, mult in enumerate(channel_mult):
        block += num_res_blocks[l]
        levels.append(Level(block, model_channels * mult, 2 ** l))
        if l != len(channel_mult) - 1:
            block += 1  # the Downsample block
    return tuple(levels)


def check_widths(levels, channels, who):
    """Refuse an adapter whose feature widths do not match the UNet, naming the first mismatching layer."""
    for l in range(max(len(levels), len(channels))):
        if l >= len(channels):
            raise ValueError(f"{who}: gives {len(channels)} feature levels, but the UNet layer "
                             f"input_blocks.{levels[l].block} (level {l}, {levels[l].channels} channels) expects one; "
                             "this adapter was made for a different UNet")
        if l >= len(levels):
            raise ValueError(f"{who}: level {l} feature ({channels[l]} channels) has no UNet layer: the encoder ends at "
                             f"input_blocks.{levels[-1].block}; this adapter was made for a different UNet")
        if levels[l].channels != channels[l]:
            raise ValueError(f"{who}: level {l} feature has {channels[l]} channels but the UNet layer "
                             f"input_blocks.{levels[l].block} has {levels[l].channels}; this adapter was made for a "
                             "different UNet width")
