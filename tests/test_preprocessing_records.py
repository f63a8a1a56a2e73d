"""Run records keep the preprocessing recipe; outputs made before recipes existed still open.

tests/data/pre_recipes/ was written by the code just before recipes (commit 1fc4565), unchanged since:

- ``index/``: ``dense-retrieval index build images --out index --proposals superpixels`` (embedded
  MobileNetV2) over ``images/a.png`` and ``images/b.png``;
- ``propagation.json``: the record of ``davis propagate --preset dino --year 2016`` on davis16-mini.

Their records name a PIL filter (``features.interpolation``) instead of a recipe. They read as the recipe
that made them (``pil-bicubic``): the index answers queries with the vectors it stores and takes more
images; a results folder resumes only with that recipe and is refused, naming the difference, otherwise.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dense_retrieval.backbone.preprocessing import get_preprocessing
from dense_retrieval.data.synth import make_synthetic_davis
from dense_retrieval.errors import DataFormatError
from dense_retrieval.records import RunRecord, upgrade_features

OLD = Path(__file__).parent / "data" / "pre_recipes"


def test_an_old_record_reads_as_the_recipe_that_made_it():
    document = json.loads((OLD / "propagation.json").read_text())
    features = document["run"]["features"]
    assert features["interpolation"] == "bicubic" and "preprocess" not in features
    record = RunRecord.from_dict(document["run"], "old")
    assert record.features["preprocess"] == get_preprocessing("pil-bicubic").record()
    assert "interpolation" not in record.features
    # a current record is left as it is; an unknown filter is not guessed (the shape check then names it)
    assert upgrade_features(record.features) == record.features
    with pytest.raises(DataFormatError, match="lacks preprocess"):
        RunRecord.from_dict({**document["run"], "features": {**features, "interpolation": "lanczos"}}, "odd")
    with pytest.raises(DataFormatError, match="not a recipe object"):
        RunRecord.from_dict({**document["run"], "features": {**record.features, "preprocess": "dino"}}, "odd")


@pytest.mark.weights
def test_an_index_built_before_recipes_opens_answers_and_grows(tmp_path, run_cli):
    index = tmp_path / "index"
    shutil.copytree(OLD / "index", index)
    shutil.copytree(OLD / "images", tmp_path / "images")
    info = run_cli("index", "info", index, "--json")
    assert info.exit_code == 0, info
    assert info.json()["config"]["features"]["preprocess"]["name"] == "pil-bicubic"
    # every proposal of a.png finds itself: the rebuilt extractor makes the vectors the index holds
    query = run_cli("query", index, tmp_path / "images" / "a.png", "--proposals", "superpixels", "--json")
    assert query.exit_code == 0, query
    queries = query.json()["queries"]
    assert queries and all(q["hits"][0]["score"] > 0.9999 for q in queries)
    copy = tmp_path / "more" / "b.png"
    copy.parent.mkdir()
    shutil.copy(tmp_path / "images" / "b.png", copy)
    added = run_cli("index", "add", index, copy, "--proposals", "superpixels", "--json")
    assert added.exit_code == 0, added
    assert added.json()["added"] > 0


@pytest.mark.weights
def test_a_results_folder_from_before_resumes_only_with_its_recipe(tmp_path, run_cli):
    root = tmp_path / "davis"
    make_synthetic_davis(root, num_sequences=1, num_frames=4, size=(48, 64), year="2016", seed=1)
    out = tmp_path / "results"
    common = ("davis", "propagate", "--davis-root", root, "--year", "2016", "--out", out, "--device", "cpu")
    made = run_cli(*common, "--preprocess", "pil-bicubic", "--json")
    assert made.exit_code == 0, made
    # rewrite its record as the code before recipes wrote it (the old record's own feature keys)
    record = json.loads((out / "propagation.json").read_text())
    old_features = json.loads((OLD / "propagation.json").read_text())["run"]["features"]
    features = {key: value for key, value in record["run"]["features"].items() if key != "preprocess"}
    record["run"]["features"] = {**features, "interpolation": "bicubic"}
    assert set(record["run"]["features"]) == set(old_features)
    (out / "propagation.json").write_text(json.dumps(record))

    refused = run_cli(*common)  # the crw default decodes with OpenCV: another recipe, never mixed
    assert refused.exit_code == 2, refused
    assert "features.preprocess.name" in refused.stderr and "--preprocess pil-bicubic" in refused.stderr
    resumed = run_cli(*common, "--preprocess", "pil-bicubic", "--json")
    assert resumed.exit_code == 0, resumed
    assert {s["status"] for s in resumed.json()["sequences"].values()} == {"skipped"}
