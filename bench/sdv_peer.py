"""The SDV side of bench/tables.py, run by a separate Python that has SDV installed (never genloom's venv:
SDV's pins stay out of genloom's, and genloom never imports SDV). Fits one SDV synthesizer on a CSV of
training rows and writes as many synthetic rows as asked.

    /tmp/sdv-venv/bin/python bench/sdv_peer.py TRAIN.csv OUT.csv --synthesizer GaussianCopulaSynthesizer --seed 0 --rows 1000

Prints one JSON line: fit and sample seconds, the SDV version and the metadata it detected.
"""

import argparse
import json
import random
import time

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("train")
    parser.add_argument("out")
    parser.add_argument("--synthesizer", default="GaussianCopulaSynthesizer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, required=True)
    args = parser.parse_args()

    import sdv
    import torch
    from sdv import single_table
    from sdv.metadata import Metadata

    torch.set_num_threads(1)  # as genloom's table presets: tiny matrices on a shared machine
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    train = pd.read_csv(args.train)
    metadata = Metadata.detect_from_dataframes({"table": train})  # SDV's own reading of the table
    synthesizer = getattr(single_table, args.synthesizer)(metadata)
    t0 = time.perf_counter()
    synthesizer.fit({"table": train})
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = synthesizer.sample(args.rows)
    if isinstance(rows, dict):  # SDV 2 returns {table name: rows}
        rows = rows["table"]
    sample = time.perf_counter() - t0
    rows.to_csv(args.out, index=False)
    sdtypes = {c: m["sdtype"] for c, m in metadata.to_dict()["tables"]["table"]["columns"].items()}
    print(json.dumps({"fit_seconds": fit, "sample_seconds": sample, "sdv": sdv.__version__, "sdtypes": sdtypes}))


if __name__ == "__main__":
    main()
