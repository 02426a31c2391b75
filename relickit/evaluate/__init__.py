"""How relickit measures itself (RELIC.md section 4): named suites on HELD-OUT Doom maps, one module each.

    report = evaluate("revisit", session_factory(model, tokenizer), maps=("MAP21",), out_dir="eval/revisit")
    python -m relickit.evaluate --suite revisit --out eval/revisit/report.json          # shipped assets
    RELICKIT_SMOKE=1 python -m relickit.evaluate --suite action --out /tmp/action.json  # random tiny model
    python -m relickit.evaluate --suite action --model T --teacher --out eval/teacher    # a teacher, as a student
    python -m relickit.evaluate.gates                                                   # the quality gates
    python -m relickit.evaluate.gallery                                                 # docs/gallery/

| module     | what |
|------------|------|
| `action`   | 11 scripted action sequences; RPE of the path recovered from the frames by the pose estimator |
| `revisit`  | look away and back, 360-degree pan, walk out and return, per memory policy |
| `drift`    | per-second scores over 20 s and 2 min; the slope is the drift |
| `speed`    | end-to-end and denoise-only FPS, time to first frame, KV tokens and bytes |
| `teacher`  | the bidirectional teacher against the student on held-out dataset clips |
| `scoring`  | frames against truth beside the frozen start frame and the tokenizer ceiling; picture statistics |
| `gates`    | the campaign's six quality gates (and the tokenizer ceiling): one command runs drift, revisit, action and speed, reads the browser benchmark's and the teacher evaluation's reports, prints each gate's number and pass/fail |
| `gallery`  | fixed held-out cases as PNG strips and GIFs (truth / model / frozen start / tokenizer ceiling) |
| `oracle`   | sessions that play the engine's truth (or a blurred, darkened or frozen copy): the evaluation's own check |
| `scripts`, `engine`, `sessions`, `report` | action scripts; maps, starts and truth; sessions (a teacher's too: `TeacherSession` draws each script whole) and assets; JSON and figures |

Every frame-scoring suite scores the model beside two trivial references on the same frames (the start frame
repeated, and the truth through the tokenizer and play decoder) with sharpness, brightness and colour beside every
PSNR: PSNR rewards blur, so a gain over a still photo is the number that counts. Every suite refuses training maps
(`doom.check_split`). Reports are pure functions of (suite, model, maps, seed, settings): the same JSON twice (the
`speed` suite's timings excepted). Each suite writes `report.json` and plotly figures (HTML) to `out_dir`.
"""
from .action import suite_action
from .cli import main
from .drift import suite_drift
from .engine import Start, check_eval_maps, find_start, starts
from .report import clean, write_report
from .revisit import match_revisits, score_revisit, suite_revisit
from .scoring import COLLAPSE_SHARPNESS, compare, frozen_start, picture_summary, references, tokenizer_ceiling
from .scripts import (ENGINE_ACTIONS, EngineActions, Script, Step, action_scripts, commanded_poses, dataset_step_units,
                      drift_script, revisit_scripts)
from .sessions import (SMOKE_ENV, Run, SessionFactory, load_assets, load_posenet, random_assets, run_script,
                       session_factory, smoke_mode)
from .speed import suite_speed
from .suites import DEFAULT_MAPS, SUITES, evaluate

__all__ = [
    "COLLAPSE_SHARPNESS", "DEFAULT_MAPS", "ENGINE_ACTIONS", "SMOKE_ENV", "SUITES", "EngineActions", "Run", "Script",
    "SessionFactory", "Start", "Step", "action_scripts", "check_eval_maps", "clean", "commanded_poses", "compare",
    "dataset_step_units", "drift_script", "evaluate", "find_start", "frozen_start", "load_assets", "load_posenet",
    "main", "match_revisits", "picture_summary", "random_assets", "references", "revisit_scripts", "run_script",
    "score_revisit", "session_factory", "smoke_mode", "starts", "suite_action", "suite_drift", "suite_revisit",
    "suite_speed", "tokenizer_ceiling", "write_report",
]
