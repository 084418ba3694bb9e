"""ACGALightningCLI: extendable from another project, short errors, metric-name checks, tables."""

from __future__ import annotations

import pytest
from pytorch_lightning.callbacks import ModelCheckpoint

from acga_lightning.errors import ConfigError
from acga_lightning.lightning_cli import check_monitored_metrics, one_line, print_metric_table
from tests.test_cli import _demo_args, _quiet  # noqa: F401 (the autouse fixture of test_cli)


def test_cli_class_is_importable_and_extendable(a2d_root) -> None:
    from acga_lightning.cli import ACGALightningCLI
    from acga_lightning.lightning_cli import ACGALightningCLI as defined_here

    assert ACGALightningCLI is defined_here

    class MyCLI(ACGALightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            super().add_arguments_to_parser(parser)
            parser.add_argument("--my_flag", type=int, default=0)

    cli = MyCLI(args=["validate", *_demo_args(a2d_root, "--trainer.fast_dev_run", "true"),
                      "--my_flag", "3"])  # fmt: skip
    assert cli.config["validate"]["my_flag"] == 3 and cli.trainer.state.finished


def test_a_long_parser_message_is_folded_to_a_few_lines() -> None:
    message = 'Parser key "model.lr":\n  Expected a float.\n' + "\n".join(
        f"- {i}" for i in range(20)
    )
    folded = one_line(message, limit=4)
    assert folded.count("\n") == 4 and folded.endswith("(18 more lines)")
    assert one_line("one line") == "one line"


def test_renamed_metric_names_in_checkpoint_callbacks_are_named() -> None:
    check_monitored_metrics([ModelCheckpoint(monitor="val/mean_iou")])  # current names pass
    with pytest.raises(ConfigError, match="'val/mAP@0.5:0.95', which is now logged as 'val/map'"):
        check_monitored_metrics([ModelCheckpoint(monitor="val/mAP@0.5:0.95")])
    with pytest.raises(ConfigError, match="filename"):
        check_monitored_metrics([ModelCheckpoint(monitor="val/map", filename="{val/P@0.5:.2f}")])


def test_metric_table_prints_the_paper_label_beside_each_key(capsys) -> None:
    print_metric_table({"test/precision_50": 0.5, "test/map": 0.25, "test/loss": 1.0})
    lines = capsys.readouterr().out.splitlines()
    (row,) = [line for line in lines if "test/precision_50" in line]
    assert "P@0.5" in row and "0.5000" in row
    (row,) = [line for line in lines if "test/map" in line]
    assert "mAP@0.5:0.95" in row
