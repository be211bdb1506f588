"""Diffusion samplers against diffusers' schedulers driving the same U-Net: identical outputs for a fixed seed."""

import dataclasses

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from genloom.models.diffusion.model import Diffusion, DiffusionConfig
from genloom.models.diffusion.sampler import DDIMSampler, beta_schedule

DIFFUSERS_SCHEDULE = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


def random_model(schedule: str, prediction: str) -> Diffusion:
    torch.manual_seed(0)
    cfg = DiffusionConfig(
        channels=1, image_size=8, num_classes=10, unet_channels=8, schedule=schedule, prediction=prediction
    )
    model = Diffusion(cfg).eval()
    torch.nn.init.normal_(model.unet.out.weight, std=0.05)  # the zero-initialised head would output 0
    return model


def diffusers_kwargs(schedule: str, prediction: str) -> dict:
    return dict(
        num_train_timesteps=1000,
        beta_schedule=DIFFUSERS_SCHEDULE[schedule],
        prediction_type=prediction,
        clip_sample=False,
        timestep_spacing="leading",
        steps_offset=0,
    )


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_schedules_match_diffusers(schedule):
    theirs = DDIMScheduler(**diffusers_kwargs(schedule, "epsilon"))
    assert torch.equal(beta_schedule(schedule, 1000), theirs.betas)
    ours = DDIMSampler(1000, schedule)
    ours.set_timesteps(50)
    theirs.set_timesteps(50)
    assert torch.equal(ours.timesteps, theirs.timesteps)


@pytest.mark.parametrize(("schedule", "prediction"), [("linear", "epsilon"), ("cosine", "v_prediction")])
def test_ddim_identical_to_diffusers(schedule, prediction):
    model = random_model(schedule, prediction)
    labels = torch.tensor([1, 5, 9])
    ours = model.sample(3, labels, generator=torch.Generator().manual_seed(7), steps=10, guidance_scale=2.0)
    scheduler = DDIMScheduler(**diffusers_kwargs(schedule, prediction), set_alpha_to_one=True)
    scheduler.set_timesteps(10)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(model.model_output(x, t, labels, 2.0), t, x, eta=0.0).prev_sample
    assert torch.equal(ours, x.clamp(-1, 1))


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_ddim_precomputed_step_equals_the_general_one(prediction):
    """The eta = 0 shortcut (coefficients from set_timesteps) gives the same bits as the step computed
    from the schedule, at every timestep; eta > 0 still adds noise."""
    fast = DDIMSampler(1000, "cosine", prediction)
    fast.set_timesteps(25)
    slow = DDIMSampler(1000, "cosine", prediction)
    slow.set_timesteps(25)
    slow._coefficients = {}
    x, out = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    for t in fast.timesteps:
        a, b = fast.step(out, t, x), slow.step(out, t, x)
        assert torch.equal(a.prev_sample, b.prev_sample) and torch.equal(a.pred_original_sample, b.pred_original_sample)
    noisy = fast.step(out, fast.timesteps[3], x, eta=1.0, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(noisy.prev_sample, fast.step(out, fast.timesteps[3], x).prev_sample)


def test_ddpm_identical_to_diffusers():
    model = random_model("linear", "epsilon")
    model.config = dataclasses.replace(model.config, conditional=True)
    labels = torch.tensor([2, 4])
    ours = model.sample(2, labels, generator=torch.Generator().manual_seed(3), steps=5, sampler="ddpm")
    scheduler = DDPMScheduler(**diffusers_kwargs("linear", "epsilon"))
    scheduler.set_timesteps(5)
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 1, 8, 8, generator=generator)
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(model.model_output(x, t, labels, 2.0), t, x, generator=generator).prev_sample
    torch.testing.assert_close(ours, x.clamp(-1, 1), atol=1e-6, rtol=0)


def test_patched_unet_runs_at_half_resolution_and_keeps_the_image_shape():
    """patch_size 2 folds 2x2 pixel patches into channels: same output shape, the stem sees 4 channels at
    half the side, and each output pixel depends on its own patch's inputs (shuffle inverts unshuffle)."""
    torch.manual_seed(0)
    cfg = DiffusionConfig(channels=1, image_size=8, num_classes=10, unet_channels=8, patch_size=2)
    model = Diffusion(cfg)
    assert model.unet.stem.in_channels == 4
    seen = []
    model.unet.stem.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    x = torch.randn(3, 1, 8, 8)
    torch.nn.init.normal_(model.unet.out.weight, std=0.05)
    out = model.unet(x, torch.tensor([1, 500, 999]), torch.tensor([0, 3, 10]))
    assert out.shape == x.shape and seen == [(3, 4, 4, 4)]
    with pytest.raises(ValueError, match="patch_size"):
        DiffusionConfig(image_size=28, patch_size=2, levels=3)  # 28 does not divide by 2 * 4


def test_ema_follows_the_formula_and_sampling_uses_it():
    torch.manual_seed(0)
    cfg = DiffusionConfig(channels=1, image_size=8, num_classes=10, unet_channels=8, ema_decay=0.9)
    model = Diffusion(cfg)
    assert model.ema_unet is not None
    assert all(not p.requires_grad for p in model.ema_unet.parameters())
    assert model.num_params() == sum(p.numel() for p in model.unet.parameters())
    before = [p.clone() for p in model.ema_unet.parameters()]
    with torch.no_grad():
        for p in model.unet.parameters():
            p.add_(1.0)
    model.after_optimizer_step()  # step 1: decay min(0.9, 2/11)
    d = 2 / 11
    for e, b, p in zip(model.ema_unet.parameters(), before, model.unet.parameters(), strict=True):
        torch.testing.assert_close(e, d * b + (1 - d) * p)
    for _ in range(200):
        model.after_optimizer_step()  # the ramp reaches the configured decay
    assert int(model.ema_steps) == 201
    # sampling reads the EMA weights: make them differ from the trained ones and compare outputs
    torch.nn.init.normal_(model.ema_unet.out.weight, std=0.05)
    x, t, y = torch.randn(2, 1, 8, 8), 500, torch.tensor([1, 2])
    with torch.no_grad():
        via_ema = model.model_output(x, t, y, 1.0)
        torch.testing.assert_close(via_ema, model.ema_unet(x, torch.full((2,), t), y))
        assert not torch.allclose(via_ema, model.unet(x, torch.full((2,), t), y))
