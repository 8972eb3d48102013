#!/usr/bin/python3
"""PyTorch reference: trains the original's head on features exported by bench/export-features.ts.

The same settings and protocol as the `train` stage (nn.GRU over packed sequences, i.e. padding masked
by true lengths; dropout between layers and before the linear layer; Adam; mean BCE with logits;
length-bucketed shuffled batches; the head with the best valid loss kept), so its test accuracy is what
PyTorch reaches on the same data. Prints one JSON line.

Usage: torch_head_reference.py DIR [--batch 128] [--epochs 5] [--hidden 256] [--layers 2]
       [--unidirectional] [--dropout 0.25] [--lr 1e-3] [--seed 12345] [--threads N]
"""
import argparse, json, os, random, time
import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence


def load(d, split):
    meta = json.load(open(os.path.join(d, f"{split}.json")))
    flat = np.fromfile(os.path.join(d, f"{split}.f32"), dtype=np.float32).reshape(-1, meta["hidden"])
    offsets = np.concatenate([[0], np.cumsum(meta["lengths"])])
    rows = [torch.from_numpy(flat[offsets[i]:offsets[i + 1]]) for i in range(len(meta["lengths"]))]
    return rows, torch.tensor(meta["labels"], dtype=torch.float32)


class Head(nn.Module):
    def __init__(self, d, h, layers, bidirectional, dropout):
        super().__init__()
        self.rnn = nn.GRU(d, h, num_layers=layers, bidirectional=bidirectional, batch_first=True, dropout=0 if layers < 2 else dropout)
        self.out = nn.Linear(h * (2 if bidirectional else 1), 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, lengths):
        _, hidden = self.rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        last = torch.cat((hidden[-2], hidden[-1]), dim=1) if self.rnn.bidirectional else hidden[-1]
        return self.out(self.dropout(last)).squeeze(1)


def batches(rows, labels, size, shuffle, rng):
    order = list(range(len(rows)))
    if shuffle:
        rng.shuffle(order)
        pools = [sorted(order[i:i + 32 * size], key=lambda k: rows[k].shape[0]) for i in range(0, len(order), 32 * size)]
        groups = [p[i:i + size] for p in pools for i in range(0, len(p), size)]
        rng.shuffle(groups)
    else:
        groups = [order[i:i + size] for i in range(0, len(order), size)]
    for g in groups:
        lengths = torch.tensor([rows[k].shape[0] for k in g])
        x = nn.utils.rnn.pad_sequence([rows[k] for k in g], batch_first=True)
        yield x, lengths, labels[g]


def run_epoch(model, rows, labels, size, opt, rng):
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
    total, correct, n = 0.0, 0, 0
    model.train(opt is not None)
    with torch.set_grad_enabled(opt is not None):
        for x, lengths, y in batches(rows, labels, size, opt is not None, rng):
            logits = model(x, lengths)
            loss = loss_fn(logits, y)
            if opt is not None:
                opt.zero_grad()
                (loss / len(y)).backward()
                opt.step()
            total += loss.item()
            correct += ((logits >= 0).float() == y).sum().item()
            n += len(y)
    return total / n, correct / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--unidirectional", action="store_true")
    ap.add_argument("--dropout", type=float, default=0.25)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = random.Random(a.seed)
    data = {s: load(a.dir, s) for s in ("train", "valid", "test")}
    model = Head(data["train"][0][0].shape[1], a.hidden, a.layers, not a.unidirectional, a.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    best, history, started = None, [], time.perf_counter()
    for epoch in range(1, a.epochs + 1):
        epoch_started = time.perf_counter()
        tl, ta = run_epoch(model, *data["train"], a.batch, opt, rng)
        vl, va = run_epoch(model, *data["valid"], a.batch, None, rng)
        history.append({"epoch": epoch, "train_loss": tl, "train_accuracy": ta, "valid_loss": vl, "valid_accuracy": va,
                        "seconds": round(time.perf_counter() - epoch_started, 1)})
        if best is None or vl < best[0]:
            best = (vl, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    evaluate_started = time.perf_counter()
    result = {s: dict(zip(("loss", "accuracy"), run_epoch(model, *data[s], a.batch, None, rng))) for s in ("train", "valid", "test")}
    print(json.dumps({"peer": f"pytorch {torch.__version__}", "seconds": round(time.perf_counter() - started, 1),
                      "evaluate_seconds": round(time.perf_counter() - evaluate_started, 1), "history": history, **result}))


if __name__ == "__main__":
    main()
