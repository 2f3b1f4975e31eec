"""The stream contract of test-time methods: per OOD set, seeded shuffles of ID + that set, scored in stream
order with a fresh state, mapped back to the images, metrics on the whole pass, mean and std over repeats."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from testkit import TINY

from oodbench.backbone import BackboneSpec
from oodbench.benchmarks import custom_benchmark
from oodbench.data.spec import DataContext
from oodbench.features import FeatureStore
from oodbench.methods.common import max_softmax
from oodbench.metrics import ood_metrics
from oodbench.runner import RunConfig, run
from oodbench.scorefile import metrics_from_scores
from oodbench.scorer import METHODS, ClassHeadScorer, MethodInfo, StreamScorer, StreamScores, register_method
from oodbench.scoring import stream_order, stream_seed


@dataclass
class Probe(StreamScorer):
    """A stream method whose scores reveal what it saw: the MCM score of each image, plus ``drift`` times
    the number of images seen in earlier batches of this stream (an order-dependent, stateful part)."""

    info: ClassVar[MethodInfo] = MethodInfo(paper="test", summary="MCM + drift x images seen before")
    batch_size: int = 4
    drift: float = 1e-3
    calls: ClassVar[list] = []

    def fit(self, ctx):
        self.text = ctx.backbone.class_text_features(ctx.class_names, ["a photo of a {}"])

    def score_stream(self, image_features, *, seed):
        Probe.calls.append((len(image_features), seed, image_features.clone()))
        seen = 0  # the state: fresh for every stream
        out = []
        for start in range(0, len(image_features), self.batch_size):
            batch = image_features[start:start + self.batch_size]
            out.append(max_softmax(batch, self.text, 1.0) + self.drift * seen)
            seen += len(batch)
        scores = torch.cat(out)
        return StreamScores(scores, (image_features.double() @ self.text.double().T).argmax(1))


@pytest.fixture
def probe(monkeypatch):
    METHODS.names()  # fill the registry first: the copy below is then the whole registry
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))  # undo the registration afterwards
    Probe.calls = []
    register_method("stream-probe")(Probe)
    return Probe


def config(bench, tmp_path, methods, **kw) -> RunConfig:
    spec = custom_benchmark(f"folder:{bench['id']}", [f"folder:{bench['ood_a']}", f"folder:{bench['ood_b']}"])
    return RunConfig(methods=list(methods), benchmark=spec, backbone=BackboneSpec(TINY, "none"),
                     data=DataContext(), store=FeatureStore(tmp_path / "cache"), out_dir=tmp_path / "out",
                     workers=0, batch_size=8, bootstrap=50, **kw)


def test_streams_are_seeded_shuffles_scored_in_order_and_mapped_back(folder_benchmark, tmp_path, probe):
    results = {r.method: r for r in run(config(folder_benchmark, tmp_path, ["mcm", "stream-probe"],
                                               save_scores=True))}
    mcm, res = results["mcm"], results["stream-probe"]
    # one call per (OOD set, repeat): 18 ID images + 8 or 5 OOD images, the default 3 repeats
    assert [n for n, _, _ in probe.calls] == [26, 26, 26, 23, 23, 23]
    ood_names = [f"folder:{folder_benchmark['ood_a']}", f"folder:{folder_benchmark['ood_b']}"]
    seeds = [stream_seed(0, name, r) for name in ood_names for r in range(3)]
    assert [s for _, s, _ in probe.calls] == seeds and len(set(seeds)) == 6
    scores = res.scores
    # the features each stream saw are ID + OOD in the seeded order, and every score went back to its image
    for k, (n, seed, seen) in enumerate(probe.calls):
        name, repeat = ood_names[k // 3], k % 3
        order = stream_order(n, seed)
        part = scores[(scores["stream"] == name) & (scores["repeat"] == repeat)]
        mcm_part = mcm.scores[mcm.scores["dataset"].isin([mcm.scores["dataset"].iloc[0], name])]
        base = mcm_part["score"].to_numpy()
        position = np.empty(n, dtype=np.int64)
        position[order.numpy()] = np.arange(n)
        batches_before = (position // 4) * 4  # images in earlier batches of the stream
        np.testing.assert_allclose(part["score"].to_numpy(), base + 1e-3 * batches_before, rtol=0, atol=1e-12)
        assert seen.shape == (n, 32)
    # rows: the mean over repeats, with the std of every metric
    for row in res.rows:
        assert set(row["std"]) == {"auroc", "fpr95", "aupr_in", "aupr_out", "id_accuracy"}
        assert "ci95" in row
    first = res.rows[0]
    per_repeat = []
    for r in range(3):
        part = scores[(scores["stream"] == ood_names[0]) & (scores["repeat"] == r)]
        s_id = part.loc[part["label"] >= 0, "score"].to_numpy()
        s_ood = part.loc[part["label"] < 0, "score"].to_numpy()
        per_repeat.append(ood_metrics(s_id, s_ood)["auroc"])
    assert first["auroc"] == pytest.approx(np.mean(per_repeat), abs=1e-12)
    assert first["std"]["auroc"] == pytest.approx(np.std(per_repeat, ddof=1), abs=1e-12)
    # the scores file recomputes the rows (mean over repeats)
    again = metrics_from_scores(res.load_scores(), res.id_set)
    assert again[ood_names[1]]["fpr95"] == pytest.approx(res.rows[1]["fpr95"], abs=1e-12)
    # ID accuracy from the stream's predictions equals the static zero-shot accuracy here (same argmax)
    assert first["id_accuracy"] == pytest.approx(mcm.rows[0]["id_accuracy"])
    prov = res.provenance["stream"]
    assert prov["repeats"] == 3 and prov["batch_size"] == 4 and len(prov["seeds"][ood_names[0]]) == 3
    # the leaderboard reads "mean ± std" for the stream method only
    from oodbench.report import render

    lines = render([mcm, res], "md").splitlines()
    probe_line = next(line for line in lines if "stream-probe" in line)
    mcm_line = next(line for line in lines if line.startswith("| mcm"))
    assert f"{res.rows[0]['auroc'] * 100:.2f} ± {res.rows[0]['std']['auroc'] * 100:.2f}" in probe_line
    assert "±" not in mcm_line
    # static methods are untouched: no std, no stream columns, one ID pass
    assert "std" not in mcm.rows[0] and "stream" not in mcm.scores.columns and "stream" not in mcm.provenance


def test_no_drift_gives_the_static_numbers_with_zero_spread(folder_benchmark, tmp_path, probe):
    results = {r.method: r for r in run(config(folder_benchmark, tmp_path, ["mcm", "stream-probe"],
                                               method_params={"stream-probe": {"drift": "0"}}))}
    for mine, static in zip(results["stream-probe"].rows, results["mcm"].rows):
        for key in ("auroc", "fpr95", "aupr_in", "aupr_out"):
            assert mine[key] == pytest.approx(static[key], abs=1e-12)
            assert mine["std"][key] == pytest.approx(0.0, abs=1e-12)
        assert mine["ci95"]["auroc"] == pytest.approx(static["ci95"]["auroc"], abs=1e-12)


def test_repeats_seed_and_identity(folder_benchmark, tmp_path, probe):
    one = run(config(folder_benchmark, tmp_path, ["stream-probe"], stream_repeats=1))[0]
    assert len(probe.calls) == 2 and one.rows[0]["std"]["auroc"] == 0.0
    assert one.variant  # a non-default number of repeats is another run (its own file)
    again = run(config(folder_benchmark, tmp_path, ["stream-probe"], stream_repeats=1))[0]
    assert again.rows == one.rows  # seeded: the same streams, the same numbers
    other_seed = run(config(folder_benchmark, tmp_path, ["stream-probe"], stream_repeats=1, seed=5))[0]
    assert [c[1] for c in probe.calls[-2:]] != [c[1] for c in probe.calls[:2]]
    assert other_seed.provenance["stream"]["seeds"] != one.provenance["stream"]["seeds"]


def test_static_methods_never_enter_the_stream_path(folder_benchmark, tmp_path, monkeypatch):
    import oodbench.runner as runner

    monkeypatch.setattr(runner, "score_streams", lambda *a, **k: pytest.fail("stream path for a static method"))
    assert not ClassHeadScorer.stream
    [res] = run(config(folder_benchmark, tmp_path, ["mcm"]))
    assert "std" not in res.rows[0]


def test_stream_scorer_score_is_one_stream():
    p = dataclasses.replace(Probe(batch_size=2))
    p.text = torch.eye(3, 32)
    x = torch.nn.functional.normalize(torch.randn(5, 32, generator=torch.Generator().manual_seed(0)), dim=1)
    torch.testing.assert_close(p.score(x), p.score_stream(x, seed=0).scores)


def test_streams_log_their_progress_in_a_batch_job(folder_benchmark, tmp_path, probe, monkeypatch, caplog):
    # TANL's streams take minutes on a CPU at ImageNet scale: a batch job saw nothing meanwhile
    import logging

    monkeypatch.delenv("OODBENCH_NO_PROGRESS", raising=False)
    with caplog.at_level(logging.INFO, logger="oodbench.progress"):
        run(config(folder_benchmark, tmp_path, ["stream-probe"]))
    lines = [r.getMessage() for r in caplog.records if r.name == "oodbench.progress"]
    assert any(line.startswith("stream-probe: streams: 6/6 (100%) in ") for line in lines), lines
