"""The MMD-Hamming two-sample permutation test of PyPI ``model-equality-testing`` (MET), computed faster, for the
benchmarks that run it as a peer (model_power.py, served_power.py). Each checks it against the package itself."""

from __future__ import annotations

import numpy as np


def mmd_hamming_permutation(prompts: np.ndarray, arr: np.ndarray, n: int, permutations: int, generator
                            ) -> tuple[float, float]:
    """``run_two_sample_test(sample, other, stat_type="mmd_hamming", pvalue_type="permutation_pvalue",
    b=permutations)`` on pooled rows: ``prompts[i]`` the prompt id of row i, ``arr[i]`` its completion of L
    tokens padded with -1, the first ``n`` rows the sample. Returns (p, statistic).

    The package draws, per permutation, one ``torch.randperm`` of the pooled rows (here from ``generator``, in
    the package's order) and relabels the first ``n`` as the sample. The statistic is the mean Hamming kernel
    (fraction of equal positions) over same-prompt pairs within the sample (self-pairs left out), minus twice
    across, plus within the other, each by its own pair count; ``p = mean(null >= observed)``. A row keeps its
    prompt under permutation, so the kernel of the pooled rows is fixed: it is computed once per prompt, and
    each permutation's sums are matrix products."""
    import torch

    total, length = arr.shape
    perms = torch.stack([torch.randperm(total, generator=generator) for _ in range(permutations)]).numpy()
    z = np.zeros((permutations + 1, total), dtype=np.float32)
    z[0, :n] = 1.0
    np.put_along_axis(z[1:], perms[:, :n], 1.0, axis=1)
    sums = np.zeros((6, permutations + 1))  # s_xx, s_xy, s_yy, n_xx, n_xy, n_yy
    for p in np.unique(prompts):
        idx = np.nonzero(prompts == p)[0]
        x = arr[idx]
        g = np.zeros((len(idx), len(idx)), dtype=np.float32)  # integer counts <= L: exact in float32
        for col in x.T:
            g += col[:, None] == col[None, :]
        np.fill_diagonal(g, 0.0)
        zp = z[:, idx]
        q = np.einsum("bj,bj->b", zp @ g, zp, dtype=np.float64)
        lin = (zp @ g.sum(axis=1)).astype(np.float64)
        c = zp.sum(axis=1, dtype=np.float64)
        t = len(idx)
        sums += [q, lin - q, float(g.sum(dtype=np.float64)) - 2 * lin + q, c * c - c, c * (t - c),
                 (t - c) ** 2 - (t - c)]
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = (sums[0] / sums[3] - 2 * sums[1] / sums[4] + sums[2] / sums[5]) / length
    return float(np.mean(stat[1:] >= stat[0])), float(stat[0])
