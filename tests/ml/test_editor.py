"""The expression editor and its evaluation: an edit is the same alone and in a batch, it
changes nothing outside the face box, and ml.evaluate_editor writes every figure."""

import json

import numpy as np
import pytest
import torch

from ml import evaluate_editor
from ml.edit import CROP, ExpressionEditor, fade_window
from ml.models.editor import Editor, EditorConfig
from tests.conftest import ROOT, tiny_fer_csv

SHIPPED_EDITOR = ROOT / "weights" / "editor.pt"


def test_an_edit_depends_on_its_face_alone():
    """Within float rounding (the service and the evaluation edit one face per call)."""
    editor, _ = ExpressionEditor.from_checkpoint(SHIPPED_EDITOR)
    crops = np.random.default_rng(0).uniform(0, 255, (9, CROP, CROP)).astype(np.float32)
    classes = [i % 7 for i in range(9)]
    together = editor.edit_crops(crops, classes)
    alone = np.stack([editor.edit_crops(crops[i:i + 1], [classes[i]])[0] for i in range(9)])
    assert np.abs(together - alone).max() < 1e-3 and not np.array_equal(alone[0], alone[1])


def test_the_mask_passes_the_input_through_where_it_is_zero():
    net = Editor(EditorConfig(base_channels=4, res_blocks=1)).eval()
    torch.nn.init.constant_(net.mask.weight, 0.0)
    torch.nn.init.constant_(net.mask.bias, -50.0)  # sigmoid(-50): a mask of zeros
    x = torch.rand(2, 1, CROP, CROP) * 2 - 1
    assert torch.allclose(net(x, torch.tensor([1, 5])), x, atol=1e-6)


def test_the_fade_window_is_one_inside_and_falls_to_zero_at_the_edges():
    w = fade_window()
    assert w[CROP // 2, CROP // 2] == 1 and w[0, 0] < 0.01 and w.shape == (CROP, CROP)
    assert np.allclose(w, w.T) and np.allclose(w, w[::-1])


def test_evaluation_writes_every_figure(tmp_path):
    data = tmp_path / "data"
    (data / "fer2013").mkdir(parents=True)
    tiny_fer_csv(data / "fer2013" / "fer2013.csv.gz", gz=True)
    result = evaluate_editor.main(["--data", str(data), "--no-london", "--out", str(tmp_path / "eval")])
    assert set(result["fer"]) == {"resnet", "k5"}, "the reporting judges, not the one that chooses"
    for r in result["fer"].values():
        assert len(r["per_target"]) == 7 and 0 <= r["mean"] <= 1
    assert json.loads((tmp_path / "eval" / "editor_eval.json").read_text())["faces"] == 5
    assert "| resnet |" in (tmp_path / "eval" / "editor_eval.md").read_text()


@pytest.mark.data
def test_london_edits_leave_every_pixel_outside_the_face_box(tmp_path):
    from tests.conftest import DATA

    if not (DATA / "london").is_dir():
        pytest.fail(f"the London set is missing under {DATA}")
    result = evaluate_editor.main(["--data", str(DATA), "--limit", "20", "--out", str(tmp_path)])
    london = result["london"]
    assert london["people"] >= 50 and london["outside_box_max_change"] == 0
    assert (tmp_path / "london_sheet.png").stat().st_size > 10_000
