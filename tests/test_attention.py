import pytest
import torch

from relickit.attention import attention, resolve, xformers_available


def qkv(device="cpu", dtype=torch.float32, lq=37, lk=53):
    g = torch.Generator(device).manual_seed(0)
    return [torch.randn(2, n, 3, 16, device=device, dtype=dtype, generator=g) for n in (lq, lk, lk)]


def test_sdpa_matches_reference_with_and_without_mask():
    q, k, v = qkv()
    mask = torch.rand(37, 53) > 0.3
    mask[:, 0] = True  # every query sees something
    for m in (None, mask):
        torch.testing.assert_close(attention(q, k, v, m, "sdpa"), attention(q, k, v, m, "math"), atol=1e-5, rtol=1e-5)
    # a masked key has no influence
    v2 = v.clone()
    v2[:, ~mask.any(0)] += 100.0
    out = attention(q, k, v, mask, "sdpa")
    col = (~mask[5]).nonzero().flatten()
    if len(col):
        v3 = v.clone()
        v3[:, col] += 100.0
        torch.testing.assert_close(attention(q, k, v3, mask, "sdpa")[:, 5], out[:, 5], atol=1e-5, rtol=1e-5)


def test_backend_choice_and_errors():
    assert resolve("auto", torch.device("cpu")) == "sdpa"
    with pytest.raises(ValueError, match="unknown attention backend"):
        resolve("flash9", torch.device("cpu"))
    if not xformers_available():
        with pytest.raises(RuntimeError, match="xformers attention needs"):
            resolve("xformers", torch.device("cpu"))


@pytest.mark.skipif(not xformers_available(), reason="xformers CUDA kernels not available (GPU-only comparison)")
def test_xformers_agrees_with_sdpa_on_gpu():
    q, k, v = qkv("cuda", torch.bfloat16, 4680 // 10, 3000)
    mask = torch.rand(q.shape[1], k.shape[1], device="cuda") > 0.2
    for m in (None, mask):
        torch.testing.assert_close(attention(q, k, v, m, "xformers").float(), attention(q, k, v, m, "sdpa").float(),
                                   atol=2e-2, rtol=2e-2)
