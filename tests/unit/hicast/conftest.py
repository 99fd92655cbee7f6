import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def photos():
    """scikit-image's license-clean test photos as IMAGE batches [1, H, W, 3] float 0..1."""
    data = pytest.importorskip("skimage.data")
    return {name: torch.from_numpy(getattr(data, name)()[..., :3].astype(np.float32) / 255.0)[None]
            for name in ("astronaut", "coffee", "chelsea")}
