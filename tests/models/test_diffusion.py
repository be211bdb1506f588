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
