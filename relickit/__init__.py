"""relickit: interactive video world models with long-horizon, camera-aware KV-cache memory (RELIC)."""
from .config import MemoryConfig, ModelConfig, PRESETS, preset

__version__ = "0.1.0"
__all__ = ["ModelConfig", "MemoryConfig", "PRESETS", "preset", "__version__"]
