"""Run by .ci/run with the python of a fresh virtualenv that holds only the built wheel, from outside the repo:
the installed relickit (not the checkout) plays two steps from its bundled start frame."""
import sys
from pathlib import Path

import numpy as np

import relickit
from relickit.keys import action_from_keys
from relickit.play import Session, load_start

where = Path(relickit.__file__).resolve()
assert "site-packages" in where.parts, f"relickit was imported from {where}, not from the installed wheel"
session = Session.from_pretrained()
image, caption = load_start()
first = session.reset(image, caption)
steps = [session.step(action_from_keys(keys)) for keys in ({"W"}, {"W", "Right"})]
assert first.shape == (96, 128, 3) and all(s.shape == (12, 96, 128, 3) and s.dtype == np.uint8 for s in steps)
print(f"the wheel plays: relickit from {where.parent}, '{caption}', 1 + 2 x 12 frames, "
      f"{session.memory_stats()['total_tokens']} KV tokens; python {sys.version.split()[0]}")
