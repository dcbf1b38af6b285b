"""A linear text classifier: multinomial logistic regression over word and word-pair features.

It trains in about a second (full-batch, deterministic, no shuffling), which is what the
emergency model needs at start-up. (Tried for intents too: 98.3% on the dev set against
97.9% for spaCy's TextCatBOW, but it declined fewer out-of-scope messages.)
The features are the masked text's words, word pairs and the 4-letter pieces of longer words,
so a misspelt word still shares most of its pieces with the right one.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["LinearModel", "features"]

_PIECE = 4


def features(text: str) -> list[str]:
    """The features of one masked text: words, word pairs, and pieces of long words."""
    words = text.split() or ["empty"]
    out = [f"w:{w}" for w in words]
    padded = ["<s>", *words, "</s>"]
    out += [f"b:{a} {b}" for a, b in itertools.pairwise(padded)]
    for w in words:
        if len(w) > _PIECE + 1 and not (w.startswith("x") and w.endswith("x")):
            out += [f"c:{w[i : i + _PIECE]}" for i in range(len(w) - _PIECE + 1)]
    return out


@dataclass
class LinearModel:
    """Weights of a trained model and the names of its features and labels.

    Attributes:
        labels (list[str]): the classes, in the order of the weight columns.
        index (dict[str, int]): feature name to weight row.
        weights (np.ndarray): one row per feature, one column per label.
        bias (np.ndarray): one value per label.
    """

    labels: list[str]
    index: dict[str, int]
    weights: np.ndarray
    bias: np.ndarray

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        targets: Sequence[str],
        labels: Sequence[str],
        *,
        l2: float = 1e-4,
        steps: int = 300,
        rate: float = 0.5,
    ) -> LinearModel:
        """Train by full-batch gradient descent with Adam; the same inputs give the same model.

        Args:
            texts (Sequence[str]): masked training texts.
            targets (Sequence[str]): the label of each text.
            labels (Sequence[str]): every label, in a fixed order.
            l2 (float): weight decay, which keeps rare features from deciding alone.
            steps (int): gradient steps over the whole set.
            rate (float): Adam's step size.
        """
        label_list = list(labels)
        column = {name: i for i, name in enumerate(label_list)}
        index: dict[str, int] = {}
        rows: list[list[int]] = []
        for text in texts:
            row = sorted({index.setdefault(f, len(index)) for f in features(text)})
            rows.append(row)
        flat = np.fromiter((f for row in rows for f in row), dtype=np.int64)
        owner = np.repeat(np.arange(len(rows)), [len(row) for row in rows])
        starts = np.concatenate(([0], np.cumsum([len(row) for row in rows])[:-1]))
        # Sums over sparse rows and columns as sorted segments: far faster than np.add.at.
        by_feature = np.argsort(flat, kind="stable")
        feature_ids, feature_starts = np.unique(flat[by_feature], return_index=True)
        y = np.zeros((len(rows), len(label_list)), dtype=np.float32)
        y[np.arange(len(rows)), [column[t] for t in targets]] = 1.0
        weights = np.zeros((len(index), len(label_list)), dtype=np.float32)
        bias = np.zeros(len(label_list), dtype=np.float32)
        moments = [np.zeros_like(weights), np.zeros_like(weights), np.zeros_like(bias), np.zeros_like(bias)]
        beta1, beta2 = 0.9, 0.999
        n = len(rows)
        for step in range(1, steps + 1):
            logits = np.add.reduceat(weights[flat], starts, axis=0) + bias
            logits -= logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            probs /= probs.sum(axis=1, keepdims=True)
            error = (probs - y) / n
            grad_w = l2 * weights
            grad_w[feature_ids] += np.add.reduceat(error[owner[by_feature]], feature_starts, axis=0)
            grad_b = error.sum(axis=0)
            for k, (grad, param) in enumerate(((grad_w, weights), (grad_b, bias))):
                m, v = moments[2 * k], moments[2 * k + 1]
                m *= beta1
                m += (1 - beta1) * grad
                v *= beta2
                v += (1 - beta2) * grad * grad
                m_hat = m / (1 - beta1**step)
                v_hat = v / (1 - beta2**step)
                param -= rate * m_hat / (np.sqrt(v_hat) + 1e-8)
        return cls(label_list, index, weights.astype(np.float32), bias.astype(np.float32))

    def predict(self, text: str) -> dict[str, float]:
        """The probability of each label for one masked text."""
        rows = [self.index[f] for f in set(features(text)) if f in self.index]
        logits = self.bias + (self.weights[rows].sum(axis=0) if rows else 0.0)
        logits = logits - logits.max()
        probs = np.exp(logits)
        probs /= probs.sum()
        return {label: float(p) for label, p in zip(self.labels, probs, strict=True)}

    def predict_many(self, texts: Iterable[str]) -> list[dict[str, float]]:
        """:meth:`predict` for several texts."""
        return [self.predict(text) for text in texts]

    def to_bytes(self) -> bytes:
        """The model as one ``.npz`` blob, for the cache."""
        names = sorted(self.index, key=self.index.__getitem__)
        buffer = io.BytesIO()
        np.savez(
            buffer,
            labels=np.array(self.labels),
            names=np.array(names),
            weights=self.weights,
            bias=self.bias,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearModel:
        """A model saved by :meth:`to_bytes`."""
        with np.load(io.BytesIO(data), allow_pickle=False) as saved:
            names = [str(n) for n in saved["names"]]
            return cls(
                [str(label) for label in saved["labels"]],
                {name: i for i, name in enumerate(names)},
                saved["weights"],
                saved["bias"],
            )
