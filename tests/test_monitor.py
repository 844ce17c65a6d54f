"""The collapse monitor inside a real PyTorch Lightning Trainer (skipped without lightning): it measures on schedule,
logs through the module, and leaves the training state as it found it."""
import pytest
import torch
from optional import import_or_skip
from torch import nn

from simsiam_collapse.monitor import CollapseMonitor, lightning_callback

L = import_or_skip("lightning", reason="pip install lightning (the [lightning] extra) for this test")


class TinySSL(L.LightningModule):
    "A backbone with batch norm and a head; asserts in every step that the monitor left it in train mode."
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU())
        self.head = nn.Linear(16, 4)
        self.modes = []

    def training_step(self, batch, batch_idx):
        self.modes.append((self.training, self.backbone[1].training, torch.is_grad_enabled()))
        return self.head(self.backbone(batch[0])).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_the_monitor_runs_as_a_lightning_callback_without_touching_training(tmp_path):
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(64, 8))
    held_out = torch.randn(128, 8)
    monitor = CollapseMonitor(held_out, every=3, features=lambda m, x: m.backbone(x), log=None)
    bn_steps = []
    class Probe(L.Callback):  # the BN statistics move only through training batches: count them before and after
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            bn_steps.append(int(pl_module.backbone[1].num_batches_tracked))
    trainer = L.Trainer(max_steps=8, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", default_root_dir=tmp_path,
                        callbacks=[lightning_callback(monitor), Probe()])
    model = TinySSL()
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=8))
    assert [r["step"] for r in monitor.history] == [3, 6]
    assert all(r["images"] == 128 and r["feature_dim"] == 16 for r in monitor.history)
    assert model.modes == [(True, True, True)] * 8  # every step in train mode with gradients, after measurements too
    assert bn_steps == list(range(1, 9))  # the measurements' 128 images never entered the running statistics
    logged = {k for k in trainer.callback_metrics if k.startswith("collapse/")}
    assert logged == {f"collapse/{k}" for k in monitor.history[-1] if k not in ("step", "spectrum")}  # step: the x-axis


def test_a_plain_loop_continues_exactly_as_without_the_monitor():
    "Same seed, same data: a run with a monitor ends with the weights and BN statistics of a run without it."
    def run(monitored):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Dropout(0.2), nn.Linear(16, 4))
        net[1].eval()  # a frozen batch norm stays frozen: its statistics must not start moving after a measurement
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        # a feature function that draws from the generator (as an augmentation would): the run's draws must not shift
        noisy = lambda m, x: m[:2](x + 0.01 * torch.randn_like(x))  # noqa: E731
        monitor = CollapseMonitor(torch.randn(100, 8), every=2, features=noisy, log=None)
        for _ in range(6):
            loss = net(torch.randn(32, 8)).pow(2).mean()  # dropout draws from the generator the monitor must not move
            opt.zero_grad(); loss.backward(); opt.step()
            if monitored: monitor.step(net)
        return net.state_dict(), monitor.history
    plain, _ = run(False)
    watched, history = run(True)
    assert len(history) == 3
    for k in plain: assert torch.equal(plain[k], watched[k]), k


def fit_with_csv_logger(tmp_path, steps, every):
    "A real Trainer with its default log_every_n_steps (50) and a CSVLogger: the rows of metrics.csv that hold the AUC."
    import csv
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(8 * steps, 8))
    monitor = CollapseMonitor(torch.randn(64, 8), every=every, features=lambda m, x: m.backbone(x), log=None)
    logger = L.pytorch.loggers.CSVLogger(tmp_path, name="csv")
    trainer = L.Trainer(max_steps=steps, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", default_root_dir=tmp_path,
                        callbacks=[lightning_callback(monitor)])
    trainer.fit(TinySSL(), torch.utils.data.DataLoader(data, batch_size=8))
    with open(f"{logger.log_dir}/metrics.csv") as f: rows = [r for r in csv.DictReader(f) if r.get("collapse/auc")]
    return monitor, rows


@pytest.mark.parametrize("steps, every", [(100, 25), (100, 30), (30, 10)])
def test_every_measurement_is_logged_at_the_step_it_was_taken(tmp_path, steps, every):
    # with self.log, every=30 landed at steps 49 and 99 and lost step 60; a 30-step fit wrote no metrics.csv at all
    monitor, rows = fit_with_csv_logger(tmp_path, steps, every)
    assert [int(r["step"]) for r in rows] == list(range(every, steps + 1, every))
    assert [float(r["collapse/auc"]) for r in rows] == pytest.approx([r["auc"] for r in monitor.history], rel=1e-6)
