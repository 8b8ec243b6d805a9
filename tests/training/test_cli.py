import json

from facelivenet.edge_runtime.constants import EXIT_FAILURE
from facelivenet.training.cli import main


def test_model_info_json(capsys):
    assert main(["model-info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info) == {"params", "flops", "input_size", "embedding_dim", "expression_labels"}
    assert abs(info["params"] - 1.31e6) / 1.31e6 <= 0.02
    assert info["input_size"] == 112 and info["embedding_dim"] == 128
    assert info["expression_labels"] == ["neutral", "anger", "disgust", "fear", "happy", "sadness", "surprise"]
    assert info["flops"] > 1e8


def test_model_info_at_160(capsys):
    assert main(["model-info", "--json", "--input-size", "160"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input_size"] == 160


def test_unknown_config_key_is_a_clear_error(capsys):
    assert main(["model-info", "--set", "model.no_such_key=3"]) == EXIT_FAILURE
    assert "no_such_key" in capsys.readouterr().err


def test_fit_without_data_explains_what_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FACELIVE_DATA", raising=False)
    code = main(["fit", "--config", "smoke", "--out", str(tmp_path / "r"), "--quiet", "--data", str(tmp_path / "absent")])
    assert code == EXIT_FAILURE
    err = capsys.readouterr().err
    assert "absent" in err and "does not exist" in err
