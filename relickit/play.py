"""Play: a streaming world session in the spirit of DIAMOND's world-model environment.

    session = Session.from_pretrained()            # the shipped default model
    first = session.reset(image, "a brown brick hangar with green slime pools")
    frames = session.step(action)                  # action: 13-D RELIC action -> (12, H, W, 3) uint8

Each step denoises one chunk (3 latent frames = 12 video frames) with the few-step student against the KV cache
and its memory, commits it with a clean context pass, and decodes it with the tiny streaming decoder. The
camera pose the model reads is integrated from the actions, exactly as training poses are from labels.
The loop is `diffusion.denoise_chunk` + `diffusion.commit`: the one that self-forcing trains.

Memory: play defaults to `PLAY_MEMORY`, RELIC's compressed memory bounded to the last `PLAY_HORIZON` compressed
latent frames (a ring: older frames are forgotten, the step time and the process memory stay flat, play never
ends). `Session(..., memory=MemoryConfig())` is RELIC's unbounded memory: it forgets nothing, gets slower as it
grows, and refuses to step past `MemoryConfig.capacity` (10 minutes) with an error naming the fix.

Inputs are checked before anything changes: a rejected `step` or `reset` leaves the session as it was.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from .config import MemoryConfig, ModelConfig, layout_diff
from .controls import ACTION_DIM, ACTIONS, ControlsConfig, check_actions, integrate, pose_vector
from .diffusion import Chunk, SamplerConfig, commit, denoise_chunk
from .model import WorldModel
from .text import words
from .vae import Tokenizer, VAEConfig

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = ASSETS / "student.safetensors"
DEFAULT_TOKENIZER = ASSETS / "tokenizer.safetensors"
# play's memory: RELIC's compressed memory as a ring of the last PLAY_HORIZON compressed latent frames (22.5 s at
# 16 FPS, plus the 3-frame window), sized so a step stays flat and real time on a 2-core CPU (docs/play.md)
PLAY_HORIZON = 90
PLAY_MEMORY = MemoryConfig(horizon=PLAY_HORIZON)
# the largest action entry play accepts: training data reaches ~4 (docs/data.md); 10 is 10 mean steps or 50 degrees
# of turn per frame, far outside anything the model has seen
MAX_ACTION = 10.0


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8."""
    return ((video.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 3, 0).cpu().numpy()


def image_clip(image: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """An image (H, W, 3) uint8 -> a one-frame clip (1, 3, 1, H, W) in [-1, 1], what the tokenizer encodes."""
    return torch.from_numpy(np.array(image)).to(device).permute(2, 0, 1)[None, :, None].float() / 127.5 - 1


def check_image(image: np.ndarray, height: int, width: int) -> None:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"the start image must be a numpy array (H, W, 3) uint8, got {type(image).__name__}; "
                        "np.asarray(PIL.Image.open(path).convert('RGB')) makes one, relickit.play.load_start() too.")
    if image.dtype != np.uint8:
        raise ValueError(f"the start image must be uint8 (0-255), got {image.dtype}; use (img * 255).astype(np.uint8) for floats in [0, 1].")
    if image.shape != (height, width, 3):
        raise ValueError(f"the start image must be {height}x{width} RGB, shape ({height}, {width}, 3); got {image.shape}. "
                         "Resize it first, e.g. PIL.Image.fromarray(img).convert('RGB').resize((width, height)).")


def check_caption(text: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"the caption must be a string, got {type(text).__name__}; describe the place in a few words, "
                        "e.g. 'a brown brick hangar with green slime pools' (load_start() returns one with its image).")
    if not words(text):
        raise ValueError(f"the caption {text!r} has no words the text encoder reads (letters a-z, digits); describe "
                         "the place in a few words (static content, no motion), e.g. 'a brown brick hangar'.")


def check_action(action, max_magnitude: float = MAX_ACTION) -> torch.Tensor:
    """One action as a float32 (13,) tensor, or an error naming the fix."""
    try:
        a = torch.as_tensor(action, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"an action is {ACTION_DIM} numbers (tensor, array or list), got {type(action).__name__} "
                        f"({err}); make one with relickit.keys.action_from_keys({{'W'}}).") from err
    if a.shape != (ACTION_DIM,):
        raise ValueError(f"step takes one action of shape ({ACTION_DIM},) ({', '.join(ACTIONS)}), got shape "
                         f"{tuple(a.shape)}; make one with relickit.keys.action_from_keys({{'W'}}).")
    check_actions(a[None], max_magnitude)
    return a


def check_pair(model: ModelConfig, vae: VAEConfig) -> None:
    """The tokenizer must make the latents the model reads."""
    diff = layout_diff(model, vae)
    if diff:
        raise ValueError(f"the world model ({model.name}) and the tokenizer do not fit together; (model, tokenizer): "
                         f"{diff}. Load the tokenizer the model was trained with (a recipe run's tokenizer.safetensors, "
                         "or leave both paths at their defaults for the shipped pair).")


class Session:
    def __init__(self, model: WorldModel, tokenizer: Tokenizer, memory: MemoryConfig = PLAY_MEMORY,
                 sampler: SamplerConfig = SamplerConfig(), controls: ControlsConfig = ControlsConfig(),
                 seed: int = 0, decoder: str = "tiny", compile: bool = False):
        """memory: play's bounded ring by default (PLAY_MEMORY); MemoryConfig() is RELIC's unbounded memory.
        compile=True runs `model.compile_blocks()` (torch.compile: the first steps compile; on an H100 a Wan-1.3B
        chunk is then 26% faster, on a 2-core CPU the tiny preset gains little, docs/play.md)."""
        if decoder not in ("tiny", "vae"):
            raise ValueError(f"decoder must be 'tiny' (real-time) or 'vae' (the full Wan decoder), got {decoder!r}.")
        check_pair(model.cfg, tokenizer.cfg)
        self.model, self.tokenizer = model.eval(), tokenizer.eval()
        if compile:
            model.compile_blocks()
        self.memory, self.sampler, self.controls, self.seed, self.decoder = memory, sampler, controls, seed, decoder
        cfg = model.cfg
        self.fps = cfg.fps
        self.frames_per_step = cfg.chunk * cfg.temporal_down
        self.cache = None
        # what the last reset/step generated, for inspection (relickit.retrieval): its clean latents
        # (1, C, n, h, w) and the camera poses of its video frames, rotations (T, 3, 3) and positions (T, 3)
        self.last_latents: torch.Tensor | None = None
        self.last_poses: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def from_pretrained(cls, model_path: str | Path = DEFAULT_MODEL, tokenizer_path: str | Path = DEFAULT_TOKENIZER,
                        **kwargs) -> "Session":
        return cls(WorldModel.load(model_path), Tokenizer.load(tokenizer_path), **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def reset(self, image: np.ndarray, text: str) -> np.ndarray:
        """Start a world from an image (H, W, 3) uint8 and a caption. Returns the first frame as decoded."""
        cfg = self.model.cfg
        check_image(image, cfg.height, cfg.width)
        check_caption(text)
        self.generator = torch.Generator(self.device).manual_seed(self.seed)
        first = self.tokenizer.encode(image_clip(image, self.device))
        self.context = self.model.encode_text([text])
        self.cache = self.model.new_cache(self.memory)
        self.rotation, self.position = torch.eye(3)[None], torch.zeros(1, 3)
        static = torch.zeros(1, 1, ACTION_DIM, device=self.device)
        static[..., -1] = 1.0
        pose = pose_vector(self.rotation[:, None], self.position[:, None]).to(self.device)
        commit(self.model, self.cache, first, Chunk(self.context, static, pose))
        self.decode_state = self.tokenizer.tiny.new_state() if self.decoder == "tiny" else self.tokenizer.new_decode_cache()
        self.last_latents, self.last_poses = first, (self.rotation, self.position)
        return to_uint8(self._decode(first)[0])[0]

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        if self.decoder == "tiny":
            return self.tokenizer.decode_tiny_stream(self.decode_state, latents)
        return self.tokenizer.decode_stream(self.decode_state, latents)

    @torch.no_grad()
    def step(self, action: torch.Tensor) -> np.ndarray:
        """Hold `action` (13,) for one chunk. Returns its frames (frames_per_step, H, W, 3) uint8."""
        if self.cache is None:
            raise RuntimeError("call reset(image, text) before step(action).")
        action = check_action(action)
        cfg = self.model.cfg
        self.cache.check_room(cfg.chunk)
        actions = action.expand(1, self.frames_per_step, ACTION_DIM)
        rots, pos = integrate(self.rotation, self.position, actions, self.controls)
        cond = Chunk(self.context, actions.to(self.device), pose_vector(rots, pos).to(self.device))
        lh, lw = cfg.latent_size
        shape = (1, cfg.latent_channels, cfg.chunk, lh, lw)
        noise = torch.randn(shape, generator=self.generator, device=self.device)
        x0, _, _ = denoise_chunk(self.model, self.cache, noise, cond, self.sampler.sigmas,
                                 lambda i: torch.randn(shape, generator=self.generator, device=self.device))
        commit(self.model, self.cache, x0, cond)
        self.rotation, self.position = rots[:, -1], pos[:, -1]
        self.last_latents, self.last_poses = x0, (rots[0], pos[0])
        return to_uint8(self._decode(x0)[0])

    def memory_stats(self) -> dict:
        if self.cache is None:
            raise RuntimeError("call reset(image, text) first.")
        return self.cache.stats()

    @property
    def pose(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The camera's current rotation (3, 3) and position (3,) relative to the start."""
        return self.rotation[0], self.position[0]


def render(session: Session, image: np.ndarray, text: str, actions: torch.Tensor) -> np.ndarray:
    """Play an action script (T, 13), one chunk per `frames_per_step` frames (the chunk's first action is held).
    Returns all frames (1 + steps * frames_per_step, H, W, 3) uint8."""
    check_actions(actions, MAX_ACTION)
    frames = [session.reset(image, text)[None]]
    for s in range(0, len(actions), session.frames_per_step):
        frames.append(session.step(actions[s]))
    return np.concatenate(frames)


STARTS = ASSETS / "starts.npz"


def load_start(image: str | Path | None = None, text: str | None = None, cfg=None, index: int = 0) -> tuple[np.ndarray, str]:
    """A start image and caption: a file you name (resized to the model's frame size), or one of the bundled
    start frames from held-out maps (`relickit/assets/starts.npz`, never seen in training)."""
    from .config import preset

    cfg = cfg or preset("tiny")
    if image is None:
        if not STARTS.exists():
            raise FileNotFoundError(f"the bundled start frames ({STARTS}) are missing from this install: reinstall "
                                    "relickit, or pass your own image and caption (image=..., text=...).")
        with np.load(STARTS) as z:
            images, captions = z["images"], [str(c) for c in z["captions"]]
        if not 0 <= index < len(images):
            raise IndexError(f"there are {len(images)} bundled start frames; pick index 0..{len(images) - 1}.")
        return images[index], text or captions[index]
    from PIL import Image, UnidentifiedImageError

    path = Path(image)
    if not path.is_file():
        raise FileNotFoundError(f"no start image at {path.resolve()}; pass the path of a PNG or JPEG file, or leave "
                                "the image out to use a bundled start frame (index=...).")
    if text is None:
        raise ValueError("pass a caption (--text) with your own image: a short static description of the place.")
    check_caption(text)
    try:
        with Image.open(path) as opened:
            img = np.asarray(opened.convert("RGB").resize((cfg.width, cfg.height), Image.BILINEAR))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path} is not a readable image ({err}); pass a PNG or JPEG file.") from err
    return img, text


def make_starts(eval_root: str | Path, path: str | Path = STARTS, per_episode: int = 1) -> Path:
    """Bundle the first frames of held-out episodes (an eval-split dataset) as start frames."""
    from .checkpoint import atomic_write
    from .dataset import load_episodes, load_manifest

    if load_manifest(eval_root)["split"] != "eval":
        raise ValueError(f"{eval_root} is not an eval-split dataset: start frames must come from held-out maps.")
    images, captions, maps = [], [], []
    for ep in load_episodes(eval_root):
        for k in range(per_episode):
            f = k * (len(ep) // per_episode)
            images.append(ep.frames(f, f + 1)[0])
            captions.append(ep.caption)
            maps.append(ep.map)
    return atomic_write(path, lambda tmp: np.savez_compressed(open(tmp, "wb"), images=np.stack(images),
                                                              captions=np.array(captions), maps=np.array(maps)))


def horizon_arg(text: str) -> int | None:
    """A command-line horizon: a number of latent frames, or 'none' for RELIC's unbounded memory."""
    return None if text.strip().lower() == "none" else int(text)


def main(argv: list[str] | None = None) -> None:
    """python -m relickit.play --script "W*24, W+Right*12" --out walk.gif [--image start.png --text "..."]"""
    from .keys import parse_script

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--script", required=True, help="key script, e.g. 'W*24, W+Right*12, none*12'")
    ap.add_argument("--out", required=True, help="output .mp4 or .gif")
    ap.add_argument("--image", help="start image (PNG/JPEG); default: the bundled held-out start frame")
    ap.add_argument("--text", help="caption; default: the bundled start frame's caption")
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--tokenizer", default=str(DEFAULT_TOKENIZER))
    ap.add_argument("--policy", default="compressed", choices=["none", "window", "compressed", "full"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--horizon", type=horizon_arg, default=PLAY_HORIZON,
                    help=f"compressed latent frames kept, a multiple of 18 (default {PLAY_HORIZON}, ~23 s); "
                         "'none' keeps all of them: RELIC's unbounded memory")
    ap.add_argument("--compile", action="store_true", help="torch.compile the blocks (slow start, faster steps)")
    args = ap.parse_args(argv)
    from .joystick import write_video

    session = Session(WorldModel.load(args.model), Tokenizer.load(args.tokenizer),
                      memory=MemoryConfig(policy=args.policy, horizon=args.horizon), seed=args.seed, compile=args.compile)
    image, text = load_start(args.image, args.text, session.model.cfg)
    frames = render(session, image, text, parse_script(args.script))
    write_video(frames, Path(args.out), session.fps)
    print(f"wrote {len(frames)} frames to {args.out}")


if __name__ == "__main__":
    main()
