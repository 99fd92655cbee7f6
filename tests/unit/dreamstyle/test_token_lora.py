"""Token routing against a slow reference that applies each up matrix to its own tokens separately."""
import pytest
import torch
import torch.nn.functional as F

from dreamstyle.layout import FIRST_FRAME, STYLE_IMAGE, VIDEO
from dreamstyle.token_lora import TokenLoRA, adapted_layer_names


def random_lora(in_f=12, out_f=10, rank=4, seed=0, alpha=2.0):
    g = torch.Generator().manual_seed(seed)
    return TokenLoRA.from_weights(torch.randn(rank, in_f, generator=g), torch.randn(3, out_f, rank, generator=g), alpha)


def slow_reference(lora, x, frame_types, n, strength):
    """Token by token: x_out = s · W_up^{type(token)} W_down x."""
    b, L, _ = x.shape
    ft = frame_types if frame_types.ndim == 2 else frame_types.expand(b, -1)
    out = torch.zeros(b, L, lora.up.shape[1])
    s = strength * lora.alpha / lora.rank
    for i in range(b):
        for tok in range(L):
            t = int(ft[i, tok // n])
            out[i, tok] = s * (lora.up[t] @ (lora.down @ x[i, tok]))
    return out


@pytest.mark.parametrize("types", [[VIDEO, VIDEO], [FIRST_FRAME, VIDEO, VIDEO], [VIDEO, VIDEO, STYLE_IMAGE],
                                   [FIRST_FRAME, VIDEO, VIDEO, VIDEO, STYLE_IMAGE]])
def test_routing_matches_slow_reference(types):
    lora = random_lora()
    n = 3
    ft = torch.tensor(types)
    x = torch.randn(2, len(types) * n, 12)
    with torch.no_grad():
        got = lora.delta(x, ft, n, strength=0.7)
    torch.testing.assert_close(got, slow_reference(lora, x, ft, n, 0.7), rtol=1e-5, atol=1e-5)


def test_per_item_layouts_in_one_batch_route_separately():
    """cond and uncond batched by CFG may carry different frame types; each row follows its own."""
    lora = random_lora()
    ft = torch.tensor([[FIRST_FRAME, VIDEO, STYLE_IMAGE], [VIDEO, VIDEO, STYLE_IMAGE]])
    x = torch.randn(2, 3 * 4, 12)
    with torch.no_grad():
        got = lora.delta(x, ft, 4)
    torch.testing.assert_close(got, slow_reference(lora, x, ft, 4, 1.0), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got[0, :4], got[1, :4])  # the first frame's tokens differ in type


def test_equal_up_matrices_equal_a_plain_lora():
    g = torch.Generator().manual_seed(5)
    down, up = torch.randn(4, 12, generator=g), torch.randn(10, 4, generator=g)
    lora = TokenLoRA.from_weights(down, up.expand(3, -1, -1).clone(), alpha=4.0)
    x = torch.randn(2, 15, 12)
    ft = torch.tensor([FIRST_FRAME, VIDEO, VIDEO, VIDEO, STYLE_IMAGE])
    with torch.no_grad():
        torch.testing.assert_close(lora.delta(x, ft, 3), F.linear(F.linear(x, down), up), rtol=1e-6, atol=1e-6)


def test_new_lora_starts_as_the_base_model_and_trains_only_its_own_parameters():
    lora = TokenLoRA(12, 10, rank=4)
    x = torch.randn(1, 6, 12)
    assert torch.count_nonzero(lora.delta(x, torch.tensor([VIDEO, VIDEO]), 3)) == 0
    assert {n for n, _ in lora.named_parameters()} == {"down", "up"}


def test_token_count_mismatch_is_refused():
    with pytest.raises(ValueError, match="tokens"):
        random_lora().delta(torch.randn(1, 7, 12), torch.tensor([VIDEO, VIDEO]), 3)


def test_adapted_layers_are_self_attention_and_ffn_of_every_block():
    class Attn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for k in "qkvo":
                setattr(self, k, torch.nn.Linear(4, 4))

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn, self.cross_attn = Attn(), Attn()
            self.ffn = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 4))

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([Block(), Block()])
            self.head = torch.nn.Linear(4, 4)

    names = adapted_layer_names(Model())
    assert len(names) == 2 * 6
    assert "blocks.1.self_attn.o" in names and "blocks.0.ffn.2" in names
    assert not any("cross_attn" in n or n == "head" for n in names)


def test_hooks_add_the_routed_residual_only_inside_routing_and_detach_cleanly():
    from dreamstyle.token_lora import TokenLoRAHooks
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 10))
    lora = random_lora()
    hooks = TokenLoRAHooks({"0": lora}, strength=0.5)
    x = torch.randn(1, 6, 12)
    base = model(x)
    hooks.attach(model)
    ft = torch.tensor([FIRST_FRAME, STYLE_IMAGE])
    with torch.no_grad(), hooks.routing(ft, 3):
        got = model(x)
    torch.testing.assert_close(got, base + slow_reference(lora, x, ft, 3, 0.5), rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="outside a routing"):
        model(x)
    hooks.detach()
    assert torch.equal(model(x), base)
