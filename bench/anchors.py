#!/usr/bin/env python3
"""Side-by-side anchors for bench/anchors.sh: PyMDE and umap-learn on atlasd's graphs.

Subcommands (each prints one JSON line; run in separate processes so each is timed whole):
  pymde-full  --s S.tsv --out X.tsv   PyMDE's whole pipeline as the atlas notebook runs it:
                                      T from S (top 700 per row, S > 2, distance 1/ln S, union),
                                      preserve_neighbors(Graph(T), dim 3, Linear, k 10, random
                                      init) with its own shortest-path kNN, embed(max_iter 2000)
  pymde-knn   --knn KNN.tsv --out X.tsv   PyMDE's embed on atlasd's kNN graph (same problem
                                      shape: weights 1 or 2 for mutual, as many repulsive pairs
                                      sampled by PyMDE, Linear/Log, Centered, random init)
  umap        --x X.tsv --out Y.tsv   umap-learn fit_transform(n_neighbors 150, min_dist 0.25)
                                      after a JIT warm-up (numba compiles on first use)
  compare     ...                     quality of every output on common ground (see below)
"""
import argparse
import json
import os
import statistics
import sys
import time

T_START = time.time()


def cpu():
    """CPU seconds of this process so far, all threads (the machine is shared: wall times of
    runs side by side drift with the load, CPU time much less)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Stage:
    """Wall and CPU seconds of one stage: with Stage() as st: ...; st.wall, st.cpu."""

    def __enter__(self):
        self.w0, self.c0 = time.time(), cpu()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.time() - self.w0, cpu() - self.c0
        return False

    def json(self):
        return {"wall": round(self.wall, 3), "cpu": round(self.cpu, 3)}


def read_coords(path):
    ids, rows = [], []
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            ids.append(p[0])
            rows.append([float(v) for v in p[1:]])
    import numpy as np

    return ids, np.asarray(rows, dtype=np.float64)


def write_coords(path, ids, x):
    with open(path, "w") as f:
        for i, row in zip(ids, x):
            f.write(i + "\t" + "\t".join("%.9g" % v for v in row) + "\n")


def read_knn(path):
    """atlasd's --knn-out rows (item, neighbour, distance): item ids and directed index pairs."""
    ids, index, src, dst = [], {}, [], []
    with open(path) as f:
        for line in f:
            a, b, _ = line.rstrip("\n").split("\t")
            for v in (a, b):
                if v not in index:
                    index[v] = len(ids)
                    ids.append(v)
            src.append(index[a])
            dst.append(index[b])
    return ids, src, dst


def knn_problem(n, src, dst):
    """Undirected kNN edges i < j with weight [j in N(i)] + [i in N(j)] (PyMDE's convention)."""
    import numpy as np

    s = np.asarray(src, dtype=np.int64)
    d = np.asarray(dst, dtype=np.int64)
    lo, hi = np.minimum(s, d), np.maximum(s, d)
    key = lo * n + hi
    uniq, counts = np.unique(key, return_counts=True)
    edges = np.stack([uniq // n, uniq % n], axis=1)
    return edges, counts.astype(np.float32)


def set_threads(n):
    import torch

    torch.set_num_threads(n)


def cmd_pymde_knn(a):
    import numpy as np
    import torch
    import pymde
    from pymde import constraints, penalties, preprocess, problem

    set_threads(a.threads)
    pymde.seed(a.seed)
    t_import = time.time() - T_START
    ids, src, dst = read_knn(a.knn)
    n = len(ids)
    edges, w = knn_problem(n, src, dst)
    edges = torch.tensor(edges)
    weights = torch.tensor(w)
    constraint = constraints.Centered()
    x0 = constraint.initialization(n, 3, "cpu")
    n_rep = min(int(edges.shape[0]), n * (n - 1) // 2 - edges.shape[0])
    neg = preprocess.sample_edges(n, n_rep, exclude=edges)
    all_edges = torch.cat([edges, neg])
    all_w = torch.cat([weights, -torch.ones(neg.shape[0], dtype=weights.dtype)])
    f = penalties.PushAndPull(all_w, attractive_penalty=penalties.Linear,
                              repulsive_penalty=penalties.Log)
    mde = problem.MDE(n_items=n, embedding_dim=3, edges=all_edges, distortion_function=f,
                      constraint=constraint, device="cpu")
    mde._X_init = x0
    with Stage() as st_embed:
        x = mde.embed(max_iter=a.max_iter, eps=1e-5)
    write_coords(a.out, ids, x.cpu().numpy())
    torch.save({"edges": all_edges, "weights": all_w, "ids": ids}, a.out + ".problem.pt")
    print(json.dumps({"tool": "pymde", "graph": "atlasd kNN", "items": n,
                      "edges": int(all_edges.shape[0]), "knn_edges": int(edges.shape[0]),
                      "iterations": a.max_iter, "distortion": float(mde.average_distortion(x)),
                      "seconds": {"import": t_import, "embed": st_embed.json()},
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


def build_t(path, top=700, min_s=2.0):
    """T as atlasd builds it: per row the `top` largest S > min_s (ties: lower column first),
    distance 1/ln S, made symmetric (an edge kept by either row; same distance both ways)."""
    import numpy as np
    import scipy.sparse as sp

    rows = {}
    index, ids = {}, []
    with open(path) as f:
        for line in f:
            a, b, s = line.rstrip("\n").split("\t")
            s = float(s)
            for v in (a, b):
                if v not in index:
                    index[v] = len(ids)
                    ids.append(v)
            if s <= min_s:
                continue
            i, j = index[a], index[b]
            rows.setdefault(i, []).append((s, j))
            rows.setdefault(j, []).append((s, i))
    # atlasd numbers items in sorted id order: do the same so index order (which PyMDE's
    # directed shortest paths depend on) matches
    order = sorted(range(len(ids)), key=lambda k: ids[k])
    new = {old: k for k, old in enumerate(order)}
    ii, jj, dd = [], [], []
    for i, lst in rows.items():
        lst.sort(key=lambda e: (-e[0], new[e[1]]))
        for s, j in lst[:top]:
            ii.append(new[i])
            jj.append(new[j])
            dd.append(1.0 / np.log(s))
    n = len(ids)
    a = sp.coo_matrix((dd + dd, (ii + jj, jj + ii)), shape=(n, n)).tocsr()
    a.sum_duplicates()  # an edge kept by both rows appears twice (4x after symmetrising)
    a.data = np.asarray(a.data)
    # duplicates were summed: divide by the multiplicity to get the distance back
    cnt = sp.coo_matrix((np.ones(2 * len(dd)), (ii + jj, jj + ii)), shape=(n, n)).tocsr()
    cnt.sum_duplicates()
    a.data = a.data / cnt.data
    return [ids[k] for k in order], a


def cmd_pymde_full(a):
    import torch
    import pymde

    set_threads(a.threads)
    pymde.seed(a.seed)
    t_import = time.time() - T_START
    with Stage() as st_graph:
        ids, tmat = build_t(a.s)
    with Stage() as st_knn:
        g = pymde.preprocess.Graph(tmat)
        mde = pymde.preserve_neighbors(g, embedding_dim=3,
                                       attractive_penalty=pymde.penalties.Linear,
                                       n_neighbors=10, init="random")
    with Stage() as st_embed:
        x = mde.embed(max_iter=a.max_iter)
    write_coords(a.out, ids, x.cpu().numpy())
    print(json.dumps({"tool": "pymde", "graph": "PyMDE's own kNN", "items": len(ids),
                      "edges": int(mde.edges.shape[0]), "iterations": a.max_iter,
                      "distortion": float(mde.average_distortion(x)),
                      "seconds": {"import": t_import, "graph": st_graph.json(),
                                  "knn": st_knn.json(), "embed": st_embed.json()}}))


def cmd_umap(a):
    os.environ.setdefault("NUMBA_NUM_THREADS", str(a.threads))
    import numpy as np
    import umap

    t_import = time.time() - T_START
    ids, x = read_coords(a.x)
    rng = np.random.default_rng(1)
    with Stage() as st_jit:
        umap.UMAP(n_neighbors=15, min_dist=0.25, n_epochs=5, n_jobs=a.threads).fit_transform(
            rng.normal(size=(300, x.shape[1])))
    # no random_state: umap-learn runs its SGD on all threads only when unseeded (as emblaze
    # runs it); seeded it is single-threaded
    with Stage() as st_fit:
        y = umap.UMAP(n_neighbors=150, min_dist=0.25, n_components=2,
                      n_jobs=a.threads).fit_transform(x)
    write_coords(a.out, ids, y)
    print(json.dumps({"tool": "umap-learn", "items": len(ids), "version": umap.__version__,
                      "seconds": {"import": t_import, "jit_warmup": st_jit.json(),
                                  "fit": st_fit.json()}}))


# ---- quality on common ground -----------------------------------------------------------------

def knn_idx(x, k):
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1).fit(x)
    idx = nn.kneighbors(x, return_distance=False)
    return idx[:, 1:]


def purity(x, labels, k=10):
    """10-NN label purity over labelled points (unlabelled neighbours count as different)."""
    import numpy as np

    idx = knn_idx(x, k)
    have = labels >= 0
    same = (labels[idx] == labels[:, None]) & (labels[idx] >= 0)
    return float(same[have].mean())


def preservation(x, ref_sets, k=10):
    """Mean fraction of each point's reference neighbours among its k nearest in x."""
    import numpy as np

    idx = knn_idx(x, k)
    tot = 0.0
    cnt = 0
    for i, ref in enumerate(ref_sets):
        if not ref:
            continue
        tot += len(ref.intersection(idx[i])) / len(ref)
        cnt += 1
    return tot / max(cnt, 1)


def align(ids_ref, ids, x):
    pos = {v: k for k, v in enumerate(ids)}
    return x[[pos[v] for v in ids_ref]]


def cmd_compare(a):
    import numpy as np
    import torch
    from pymde import constraints, penalties, problem

    ids, src, dst = read_knn(a.knn)
    n = len(ids)
    lab_of = {}
    if a.labels:
        names = {}
        with open(a.labels) as f:
            for line in f:
                p = line.rstrip("\n").split("\t")
                lab_of[p[0]] = names.setdefault(p[1], len(names))
    labels = np.array([lab_of.get(v, -1) for v in ids])
    knn_sets = [set() for _ in range(n)]
    for s, d in zip(src, dst):
        knn_sets[s].add(d)
    prob = torch.load(a.problem)
    f = penalties.PushAndPull(prob["weights"], attractive_penalty=penalties.Linear,
                              repulsive_penalty=penalties.Log)
    mde = problem.MDE(n_items=n, embedding_dim=3, edges=prob["edges"], distortion_function=f,
                      constraint=constraints.Centered(), device="cpu")
    out = {}
    x3 = {}
    for name, path in a.x3d:
        pid, x = read_coords(path)
        x = align(ids, pid, x)
        x3[name] = x
        out[name] = {
            "distortion_pymde_problem": float(mde.average_distortion(
                torch.tensor(x - x.mean(0), dtype=torch.float32))),
            "purity_3d": purity(x, labels) if a.labels else None,
            "knn_preservation_3d": preservation(x, knn_sets),
        }
    ref = x3[a.x3d[0][0]]
    ref_sets = [set(r) for r in knn_idx(ref, 10)]
    for name, path in a.x2d:
        pid, y = read_coords(path)
        y = align(ids, pid, y)
        out[name] = {
            "purity_2d": purity(y, labels) if a.labels else None,
            "nbr_preservation_2d": preservation(y, ref_sets),
        }
    print(json.dumps(out))


def load(path):
    try:
        with open(path) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None


def read_pairs(path):
    """(atlasd MDE s, PyMDE embed s) of anchors.sh --pairs, or [] without the file"""
    try:
        with open(path) as f:
            return [tuple(float(v) for v in l.split()) for l in f if len(l.split()) == 2]
    except OSError:
        return []


def cmd_report(a):
    """The table of bench/anchors.sh from the JSON files in --work; writes anchors.json."""
    import platform

    w = a.work
    r = {k: load(os.path.join(w, k + ".json"))
         for k in ("atl3d", "atl2d", "pymde_full", "pymde_knn", "umap", "quality")}
    t = {k: load(os.path.join(w, k + ".time"))
         for k in ("atl3d", "atl2d", "pymde_full", "pymde_knn", "umap")}
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    rows = []

    def row(what, atl, anchor, note="", ratio=None):
        if ratio is None:
            ratio = anchor / atl if atl and anchor else None
        rows.append({"what": what, "atlasd": atl, "anchor": anchor, "ratio": ratio,
                     "note": note})

    def pcpu(tm):
        return tm["cpu"] + tm["sys"] if tm else None

    q = r["quality"] or {}
    if r["atl3d"] and r["pymde_knn"]:
        row("MDE embed, 2000 it (wall s)", r["atl3d"]["seconds"]["mde"],
            r["pymde_knn"]["seconds"]["embed"]["wall"], "PyMDE on atlasd's kNN graph")
    pairs = read_pairs(os.path.join(w, "pairs.tsv"))
    if pairs:
        ratios = sorted(p / a for a, p in pairs)
        row("MDE embed, median of %d pairs (wall s)" % len(pairs),
            statistics.median(a for a, _ in pairs), statistics.median(p for _, p in pairs),
            "median ratio %.1fx, %.1f..%.1fx" % (statistics.median(ratios), ratios[0],
                                                  ratios[-1]),
            statistics.median(ratios))
    if t["atl3d"] and r["pymde_full"]:
        row("3-D whole process (wall s)", t["atl3d"]["wall"], t["pymde_full"]["wall"],
            "PyMDE: T, its own kNN, embed")
        row("3-D whole process (CPU s)", pcpu(t["atl3d"]), pcpu(t["pymde_full"]))
    if t["atl3d"] and t["pymde_knn"]:
        row("3-D whole process on atlasd's kNN (wall s)", t["atl3d"]["wall"],
            t["pymde_knn"]["wall"], "atlasd also prunes and finds the kNN")
    if r["atl2d"] and r["umap"]:
        row("2-D layout (wall s)", r["atl2d"]["seconds"]["layout"],
            r["umap"]["seconds"]["fit"]["wall"], "umap-learn fit after JIT warm-up")
    out = {"scale": a.scale, "threads": a.threads,
           "machine": {"cpu": cpu_model, "cores": os.cpu_count(), "kernel": platform.release(),
                       "load_avg_at_end": os.getloadavg()},
           "runs": r, "process": t, "ratios": rows}
    with open(os.path.join(w, "anchors.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("machine: %s, %d cores, load average at the end %.1f" %
          (cpu_model, os.cpu_count(), os.getloadavg()[0]))
    print("%-44s %10s %10s %8s  %s" % ("figure", "atlasd", "anchor", "ratio", "note"))
    for x in rows:
        print("%-44s %10.3f %10.3f %7.1fx  %s" % (x["what"], x["atlasd"], x["anchor"],
                                                  x["ratio"] or 0, x["note"]))
    print("\nquality (distortion on PyMDE's problem; purity: 10-NN same label; preservation: "
          "kNN-graph neighbours kept (3-D), 3-D 10-NN kept (2-D))")
    for name, v in q.items():
        print("  %-16s %s" % (name, "  ".join("%s %.4f" % (k, x) for k, x in v.items()
                                               if x is not None)))
    for k in ("atl3d", "pymde_knn", "pymde_full"):
        if r[k]:
            print("  %-16s own distortion %.6f" % (k, r[k]["distortion"]))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("pymde-knn")
    q.add_argument("--knn", required=True)
    q.add_argument("--out", required=True)
    q = sub.add_parser("pymde-full")
    q.add_argument("--s", required=True)
    q.add_argument("--out", required=True)
    q = sub.add_parser("umap")
    q.add_argument("--x", required=True)
    q.add_argument("--out", required=True)
    q = sub.add_parser("report")
    q.add_argument("--work", required=True)
    q.add_argument("--scale", default="small")
    q = sub.add_parser("compare")
    q.add_argument("--knn", required=True)
    q.add_argument("--problem", required=True)
    q.add_argument("--labels")
    q.add_argument("--x3d", nargs=2, action="append", default=[], metavar=("NAME", "FILE"))
    q.add_argument("--x2d", nargs=2, action="append", default=[], metavar=("NAME", "FILE"))
    for q in sub.choices.values():
        q.add_argument("--threads", type=int, default=2)
        q.add_argument("--seed", type=int, default=42)
        q.add_argument("--max-iter", type=int, default=2000)
    a = p.parse_args()
    {"pymde-knn": cmd_pymde_knn, "pymde-full": cmd_pymde_full, "umap": cmd_umap,
     "compare": cmd_compare, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
