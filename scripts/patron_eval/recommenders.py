"""The baselines, computed from a split's training lines, and the metrics.

- most popular: items by their number of distinct training buyers;
- item-kNN: cosine similarity of item columns of the binary customer x item
  matrix X (S = D^-1/2 X'X D^-1/2 over every pair, no neighbour cut-off); a
  customer's score for j is the sum over the customer's items i of S[i, j];
- SAR (Microsoft's Smart Adaptive Recommendations): Jaccard similarity
  C[i,j] / (C[i,i] + C[j,j] - C[i,j]) of the co-occurrence C = X'X; the
  affinity of a customer for an item is the sum over the customer's
  training lines of that item of 2^(-(T0 - t) / 30 days), T0 the latest
  training time; score = affinity x similarity.

Each answers the top 10 by score, the customer's training items excluded,
ties broken by item id (as text). With these definitions the Online
Retail README's reference figures come out exactly (0.0410, 0.0727, 0.0776
P@10 on the full file with its protocol, non-products kept).

Metrics (the data READMEs'): P@10 = hits / 10, R@10 = hits / |test items|,
nDCG@10 with binary relevance (DCG = sum of 1/log2(rank + 1) over hits, over
the DCG of min(10, |test|) hits), averaged over the test customers.
"""
import math

import numpy as np
import scipy.sparse as sp

K = 10
HALF_LIFE_DAYS = 30.0
DAY_MS = 86_400_000
CHUNK = 256  # customers scored at once: a dense chunk x items block


class Training:
    """A split's training lines as index arrays and the binary matrix X."""

    def __init__(self, lines):
        self.items = sorted({l.item for l in lines})
        self.users = sorted({l.customer for l in lines})
        self.iix = {s: j for j, s in enumerate(self.items)}
        self.uix = {c: u for u, c in enumerate(self.users)}
        self.u = np.fromiter((self.uix[l.customer] for l in lines), dtype=np.int64, count=len(lines))
        self.i = np.fromiter((self.iix[l.item] for l in lines), dtype=np.int64, count=len(lines))
        self.t_ms = np.fromiter((l.t_ms for l in lines), dtype=np.float64, count=len(lines))
        shape = (len(self.users), len(self.items))
        x = sp.csr_matrix((np.ones(len(lines)), (self.u, self.i)), shape=shape)
        x.data[:] = 1.0  # duplicates were summed: bought or not
        self.X = x
        self._cooc = None

    def cooccurrence(self):
        """C = X'X (sparse): C[i,j] = customers who bought both, C[i,i] buyers of i."""
        if self._cooc is None:
            self._cooc = (self.X.T @ self.X).tocsr()
        return self._cooc


def popularity_scorer(tr):
    """Distinct buyers per item, the same row for everyone."""
    pop = np.asarray(tr.X.sum(axis=0)).ravel()
    return lambda rows: np.broadcast_to(pop, (len(rows), len(pop)))


def knn_scorer(tr):
    """Sum of cosine similarities to the customer's items."""
    c = tr.cooccurrence()
    inv = 1.0 / np.sqrt(c.diagonal())
    s = sp.diags(inv) @ c @ sp.diags(inv)
    s = s.tocsr()
    s.setdiag(0.0)  # the customer's own items are excluded anyway
    return lambda rows: (tr.X[rows] @ s).toarray()


def sar_scorer(tr, half_life_days=HALF_LIFE_DAYS):
    """Time-decayed affinity times Jaccard similarity."""
    c = tr.cooccurrence().tocoo()
    d = tr.cooccurrence().diagonal()
    jac = sp.csr_matrix((c.data / (d[c.row] + d[c.col] - c.data), (c.row, c.col)), shape=c.shape)
    t0 = tr.t_ms.max()
    w = np.power(2.0, -(t0 - tr.t_ms) / (half_life_days * DAY_MS))
    affinity = sp.csr_matrix((w, (tr.u, tr.i)), shape=tr.X.shape)  # duplicates add up
    return lambda rows: (affinity[rows] @ jac).toarray()


SCORERS = (("most popular", popularity_scorer), ("item-kNN", knn_scorer), ("SAR", sar_scorer))


def top_n(scores, exclude, k=K):
    """Indices of the k best scores, `exclude` left out, ties by index."""
    s = np.array(scores, dtype=np.float64)
    s[exclude] = -np.inf
    n = min(k, int(np.isfinite(s).sum()))
    if n == 0:
        return []
    kth = np.partition(s, len(s) - n)[len(s) - n]
    cand = np.flatnonzero(s >= kth)
    order = np.lexsort((cand, -s[cand]))
    return cand[order[:n]].tolist()


def recommend(tr, scorer, customers, k=K):
    """customer -> the top k item ids by `scorer`, training items excluded.
    Customers must all be training customers."""
    out = {}
    for start in range(0, len(customers), CHUNK):
        chunk = customers[start:start + CHUNK]
        rows = [tr.uix[c] for c in chunk]
        block = scorer(rows)
        for n, c in enumerate(chunk):
            r = rows[n]
            seen = tr.X.indices[tr.X.indptr[r]:tr.X.indptr[r + 1]]
            out[c] = [tr.items[j] for j in top_n(block[n], seen, k)]
    return out


def metrics(test, answers, k=K):
    """P@k, R@k, nDCG@k (binary relevance) averaged over the test customers;
    a customer without an answer counts as all misses."""
    p = r = n = 0.0
    for customer, truth in test.items():
        recs = answers.get(customer, [])[:k]
        hits = [1 if x in truth else 0 for x in recs]
        h = sum(hits)
        p += h / k
        r += h / len(truth)
        dcg = sum(v / math.log2(i + 2) for i, v in enumerate(hits))
        idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(truth))))
        n += dcg / idcg
    m = max(len(test), 1)
    return {"P@10": p / m, "R@10": r / m, "nDCG@10": n / m}


def coverage(answers):
    """Distinct items over all the answers."""
    return len({x for recs in answers.values() for x in recs})
