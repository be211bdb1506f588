"""Named diffusion configs."""

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "debug": {
        "model": {"unet_channels": 8, "num_train_timesteps": 100, "sample_steps": 2},
        "data": {"source": "digits"},
        "train": {"max_iters": 20, "batch_size": 16, "warmup_iters": 2, "eval_interval": 10, "eval_iters": 2},
    },
    # MNIST on 2 CPU cores, 30-minute budget (bench/images.py): a U-Net on 2x2 pixel patches (a quarter of
    # the convolution cost: 0.47 vs 1.09 s per step of batch 128 at 1 thread, with 1.8x the parameters),
    # two levels, no attention; v-prediction on the cosine schedule with min-SNR weighting, bf16 autocast;
    # EMA weights for sampling. 15 minutes at 1 thread (1680 steps) gave conditional accuracy 98.3% / FID
    # 84 at guidance 1.5, 100% / 122 at 2.0 and 100% / 195 at 3.0 (300 samples, floor 29): guidance
    # beyond what the classes need costs diversity.
    "mnist-cpu": {
        "model": {
            "unet_channels": 64,
            "patch_size": 2,
            "blocks_per_level": 1,
            "schedule": "cosine",
            "prediction": "v_prediction",
            "min_snr_gamma": 5.0,
            "cond_drop_prob": 0.1,
            "ema_decay": 0.999,
            "sample_steps": 50,
            "guidance_scale": 1.5,
        },
        "data": {"source": "mnist"},
        "train": {
            "max_iters": 30000,
            "batch_size": 128,
            "lr": 2e-3,
            "min_lr": 1e-4,
            "warmup_iters": 200,
            "weight_decay": 0.0,
            "eval_interval": 1000,
            "eval_iters": 5,
            "dtype": "bfloat16",
            "max_time": 1800.0,
        },
    },
    # A few hundred images of one's own (a folder, class subfolders optional), resized to 32x32: samples
    # worth looking at within its 8-minute budget on 2 CPU cores (bench/images_small.py measures it). The
    # mnist-cpu recipe scaled down: a narrower U-Net at full resolution, smaller batches and a faster EMA
    # for the few thousand steps there is time for. Class subfolders make it class-conditional; a flat
    # folder needs --set model.conditional=false.
    "images-small": {
        "model": {
            "unet_channels": 48,
            "schedule": "cosine",
            "prediction": "v_prediction",
            "min_snr_gamma": 5.0,
            "cond_drop_prob": 0.1,
            "ema_decay": 0.995,
            "sample_steps": 50,
            "guidance_scale": 1.5,
        },
        "data": {"image_size": 32},
        "train": {
            "max_iters": 20000,
            "batch_size": 32,
            "lr": 1e-3,
            "min_lr": 1e-4,
            "warmup_iters": 100,
            "weight_decay": 0.0,
            "eval_interval": 500,
            "eval_iters": 2,
            "dtype": "bfloat16",
            "max_time": 480.0,
        },
    },
}
