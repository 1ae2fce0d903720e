"""PyTorch reference for `metarl bench engine` (same shapes, same losses).

Run with Debian's torch (apt-get install -y python3-torch), one thread, the same
OpenBLAS kernels the engine uses:

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 Benchmarks/torch_engine.py

Not part of the tests; it only provides the comparison figures for the engine benchmark.
"""
import json, statistics, time
import torch

torch.set_num_threads(1)
torch.manual_seed(0)


def median_time(fn, samples, inner=1, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return statistics.median(times)


mlp = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 4))
params = list(mlp.parameters())


def mlp_step(x):
    loss = mlp(x).pow(2).mean()
    torch.autograd.grad(loss, params)


x1, xb = torch.randn(1, 8), torch.randn(4096, 8)
out = {}
out["mlp_b1_us"] = median_time(lambda: mlp_step(x1), 21, 2000, 200) * 1e6
out["mlp_b4096_us"] = median_time(lambda: mlp_step(xb), 21, 20) * 1e6

v = [torch.randn_like(p) for p in params]


def hvp():
    loss = mlp(xb).pow(2).mean()
    g = torch.autograd.grad(loss, params, create_graph=True)
    torch.autograd.grad(sum((gi * vi).sum() for gi, vi in zip(g, v)), params)


out["hvp_ms"] = median_time(hvp, 21, 10) * 1e3

gru = torch.nn.GRU(16, 256)
seq, h0 = torch.randn(100, 64, 16), torch.zeros(1, 64, 256)
gru_params = list(gru.parameters())


def gru_step():
    y, _ = gru(seq, h0)
    torch.autograd.grad(y.mean(), gru_params)


out["gru_ms"] = median_time(gru_step, 11, 1, 2) * 1e3
a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
t = median_time(lambda: a @ b, 15, 1, 2)
out["matmul_gflops"] = 2 * 1024**3 / t / 1e9
out["torch"] = torch.__version__
print(json.dumps(out))
