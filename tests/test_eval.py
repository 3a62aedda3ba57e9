"""`voiceai eval`: scenarios as data, checked the way they are scored, and one small evaluation through the real
v1 API (Piper speaking over a degraded phone line, Whisper, the front desk)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from secretary.settings import Settings
from secretary.speech.audio import Pcm
from secretary.speech.local_engines import LocalModels
from voiceai.cli import build_parser
from voiceai.evaluation import DEFAULT_SCENARIOS, Expect, Turn, check, evaluate, load_business, phone_line

BAKERY = {
    "domain_uuid": "e0000000-00f1-4000-8000-0000000000f1",
    "domain_name": "crumb-and-co.example.com",
    "company": "Crumb and Co",
    "greeting": "Crumb and Co bakery, how can I help?",
    "fallback_destination": "6100",
    "directory": [{"name": "Orders", "extension": "6101", "aliases": ["cake orders"]}],
}


def test_an_answer_is_checked_against_each_expectation() -> None:
    expect = Expect(action="transfer", destination="6101", say=["orders"], say_any=["putting", "connecting"],
                    never=["sorry"])  # fmt: skip
    assert check(expect, "Putting you through to Orders.", "transfer", "6101") == []
    failures = check(expect, "Sorry, who?", "continue", None)
    assert failures == [
        "action continue, expected transfer",
        "destination None, expected 6101",
        "did not say 'orders'",
        "said none of ['putting', 'connecting']",
        "said 'sorry'",
    ]


def test_a_turn_is_exactly_one_input() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Turn.model_validate({"say": "hello", "keys": "1"})
    with pytest.raises(ValueError, match="exactly one"):
        Turn.model_validate({})


def test_the_phone_line_is_8_khz_with_the_noise_asked_for() -> None:
    tone = (np.sin(np.arange(22050) * 2 * np.pi * 440 / 22050) * 8000).astype("<i2").tobytes()
    line = phone_line(Pcm(tone, 22050), snr_db=20.0, seed=1)
    assert line.sample_rate == 8000 and abs(line.duration_s - 1.0) < 0.01
    clean = Pcm(tone, 22050).resampled(8000)
    signal = np.frombuffer(clean.data, "<i2").astype(float)
    noise = np.frombuffer(line.data, "<i2").astype(float) - signal
    snr = 10 * np.log10(np.mean(signal**2) / np.mean(noise**2))
    assert 15 < snr < 21  # 20 dB of line noise, a little more from µ-law
    assert phone_line(Pcm(tone, 22050), 20.0, seed=1).data == line.data  # deterministic


def test_the_shipped_scenarios_load_for_four_businesses() -> None:
    businesses = [load_business(path) for path in sorted(DEFAULT_SCENARIOS.glob("*.yaml"))]
    assert {b.config().company for b in businesses} >= {
        "Riverside Family Clinic",
        "Hartley and Voss Solicitors",
        "Kowalski Motors",
        "Harbour View Hotel",
    }
    assert sum(len(b.scenarios) for b in businesses) >= 40
    assert len({b.config().domain_uuid for b in businesses}) == len(businesses)


def test_the_command_line() -> None:
    args = build_parser().parse_args(["eval", "--only", "goodbye", "--snr-db", "30"])
    assert args.only == "goodbye" and args.snr_db == 30.0 and args.brain == "front_desk"


async def test_an_evaluation_through_the_v1_api_scores_pass_and_fail(
    make_settings: Callable[..., Settings], models: LocalModels, tmp_path: Path
) -> None:
    path = tmp_path / "bakery.yaml"
    scenarios = [
        {"name": "goodbye", "greeting": {"say": ["Crumb"]},
         "turns": [{"say": "That's all, thank you, goodbye.", "expect": {"action": "hangup"}}]},
        {"name": "a wrong expectation", "turns": [{"keys": "6101", "expect": {"action": "hangup"}}]},
    ]  # fmt: skip
    path.write_text(yaml.safe_dump({"secretary": BAKERY, "scenarios": scenarios}))
    report = await evaluate([path], make_settings(), models, snr_db=30.0)
    assert [r.passed for r in report.results] == [True, False]
    assert "action transfer, expected hangup" in report.results[1].first_failure()
    assert "**1 of 2 passed (50%)**" in report.table()
