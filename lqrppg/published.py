"""Published numbers the paper compares against, quoted (never computed here).

Tables print these in their own block, labelled with their source, beside this project's rows
and never mixed with them. Transcribed from ``reference/method.md`` §10 and ``evaluation.md`` §5:

    INTRA         RhythmMamba (Zou et al., AAAI 2025, arXiv 2404.06483) Table 1: MAE / RMSE / Pearson
    CROSS         the same paper, Table 2: MAE / RMSE / MAPE / Pearson / SNR (dB)
    COST          the same paper, Table 5 (per frame, 30-s 128x128 inference, RTX 3090); LQ-rPPG's
                  row from its authors' thop script (method.md §7)
    UNSUPERVISED  rPPG-Toolbox paper, Table 2: MAE / MAPE (HC detector, whole-video FFT HR)

Keys are the dataset names the project's configs use (config/paper.yaml).
"""

from __future__ import annotations

__all__ = ["COST", "COST_CLAIMS", "COST_SOURCE", "CROSS", "CROSS_SOURCE", "INTRA", "INTRA_SOURCE", "UNSUPERVISED",
           "UNSUPERVISED_SOURCE", "quoted_rows"]

INTRA_SOURCE = "quoted: RhythmMamba (AAAI 2025) Table 1"
CROSS_SOURCE = "quoted: RhythmMamba (AAAI 2025) Table 2"
COST_SOURCE = "quoted: RhythmMamba (AAAI 2025) Table 5; LQ-rPPG: authors' thop script (method.md §7)"
UNSUPERVISED_SOURCE = "quoted: rPPG-Toolbox (NeurIPS 2023) Table 2"

#: method -> dataset -> {MAE, RMSE, Pearson}
INTRA: dict[str, dict[str, dict[str, float]]] = {
    "PhysNet": {"PURE": dict(MAE=2.10, RMSE=2.60, Pearson=0.99), "UBFC-rPPG": dict(MAE=2.95, RMSE=3.67, Pearson=0.97),
                "MMPD": dict(MAE=4.80, RMSE=11.80, Pearson=0.60)},
    "TS-CAN": {"PURE": dict(MAE=2.48, RMSE=9.01, Pearson=0.92), "UBFC-rPPG": dict(MAE=1.70, RMSE=2.72, Pearson=0.99),
               "MMPD": dict(MAE=9.71, RMSE=17.22, Pearson=0.44)},
    "PhysFormer": {"PURE": dict(MAE=1.10, RMSE=1.75, Pearson=0.99),
                   "UBFC-rPPG": dict(MAE=0.50, RMSE=0.71, Pearson=0.99),
                   "MMPD": dict(MAE=11.99, RMSE=18.41, Pearson=0.18)},
    "EfficientPhys": {"UBFC-rPPG": dict(MAE=1.14, RMSE=1.81, Pearson=0.99),
                      "MMPD": dict(MAE=13.47, RMSE=21.32, Pearson=0.21)},
    "Contrast-Phys+": {"PURE": dict(MAE=0.48, RMSE=0.98, Pearson=0.99),
                       "UBFC-rPPG": dict(MAE=0.21, RMSE=0.80, Pearson=0.99)},
    "RhythmFormer": {"PURE": dict(MAE=0.27, RMSE=0.47, Pearson=0.99),
                     "UBFC-rPPG": dict(MAE=0.50, RMSE=0.78, Pearson=0.99),
                     "MMPD": dict(MAE=3.07, RMSE=6.81, Pearson=0.86)},
    "RhythmMamba": {"PURE": dict(MAE=0.23, RMSE=0.34, Pearson=0.99),
                    "UBFC-rPPG": dict(MAE=0.50, RMSE=0.75, Pearson=0.99),
                    "MMPD": dict(MAE=3.16, RMSE=7.27, Pearson=0.84)},
    "POS": {"PURE": dict(MAE=3.67, RMSE=11.82), "UBFC-rPPG": dict(MAE=4.08, RMSE=7.72),
            "MMPD": dict(MAE=12.36, RMSE=17.71)},
}


def _cross(mae: float, rmse: float, mape: float, r: float, snr: float) -> dict[str, float]:
    return dict(MAE=mae, RMSE=rmse, MAPE=mape, Pearson=r, SNR=snr)


#: method -> (train, test) -> {MAE, RMSE, MAPE, Pearson, SNR}
CROSS: dict[str, dict[tuple[str, str], dict[str, float]]] = {
    "PhysNet": {("UBFC-rPPG", "PURE"): _cross(8.06, 19.71, 13.67, 0.61, 6.68),
                ("PURE", "UBFC-rPPG"): _cross(0.98, 2.48, 1.12, 0.99, 1.49),
                ("UBFC-rPPG", "MMPD"): _cross(9.47, 16.01, 11.11, 0.31, -8.15),
                ("PURE", "MMPD"): _cross(13.94, 21.61, 15.15, 0.20, -9.94)},
    "TS-CAN": {("UBFC-rPPG", "PURE"): _cross(3.69, 13.80, 3.39, 0.82, 5.26),
               ("PURE", "UBFC-rPPG"): _cross(1.30, 2.87, 1.50, 0.99, 1.49),
               ("UBFC-rPPG", "MMPD"): _cross(14.01, 21.04, 15.48, 0.24, -10.18),
               # identical to PhysNet's row in the source
               ("PURE", "MMPD"): _cross(13.94, 21.61, 15.15, 0.20, -9.94)},
    "PhysFormer": {("UBFC-rPPG", "PURE"): _cross(12.92, 24.36, 23.92, 0.47, 2.16),
                   ("PURE", "UBFC-rPPG"): _cross(1.44, 3.77, 1.66, 0.98, 0.18),
                   ("UBFC-rPPG", "MMPD"): _cross(12.10, 17.79, 15.41, 0.17, -10.53),
                   ("PURE", "MMPD"): _cross(14.57, 20.71, 16.73, 0.15, -12.15)},
    "EfficientPhys": {("UBFC-rPPG", "PURE"): _cross(5.47, 17.04, 5.40, 0.71, 4.09),
                      ("PURE", "UBFC-rPPG"): _cross(2.07, 6.32, 2.10, 0.94, -0.12),
                      ("UBFC-rPPG", "MMPD"): _cross(13.78, 22.25, 15.15, 0.09, -9.13),
                      ("PURE", "MMPD"): _cross(14.03, 21.62, 15.32, 0.17, -9.95)},
    "DeepPhys": {("UBFC-rPPG", "PURE"): _cross(5.54, 18.51, 5.32, 0.66, 4.40),
                 ("PURE", "UBFC-rPPG"): _cross(1.21, 2.90, 1.42, 0.99, 1.74),
                 ("UBFC-rPPG", "MMPD"): _cross(17.50, 25.00, 19.27, 0.06, -11.72),
                 ("PURE", "MMPD"): _cross(16.92, 24.61, 18.54, 0.05, -11.53)},
    "RhythmFormer": {("UBFC-rPPG", "PURE"): _cross(0.97, 3.36, 1.60, 0.99, 12.01),
                     ("PURE", "UBFC-rPPG"): _cross(0.89, 1.83, 0.97, 0.99, 6.05),
                     ("UBFC-rPPG", "MMPD"): _cross(9.08, 15.07, 11.17, 0.53, -7.73),
                     ("PURE", "MMPD"): _cross(8.98, 14.85, 11.11, 0.51, -8.39)},
    "RhythmMamba": {("UBFC-rPPG", "PURE"): _cross(1.98, 6.51, 3.59, 0.96, 8.94),
                    ("PURE", "UBFC-rPPG"): _cross(0.95, 1.83, 1.04, 0.99, 6.35),
                    ("UBFC-rPPG", "MMPD"): _cross(10.63, 17.14, 12.14, 0.34, -8.28),
                    ("PURE", "MMPD"): _cross(10.44, 16.70, 12.25, 0.36, -8.18)},
}

#: method -> {params_m, macs_m, kfps, peak_mem_m}; None where the source gives none
COST: dict[str, dict[str, float | None]] = {
    "DeepPhys": dict(params_m=1.98, macs_m=744.45, kfps=5.65, peak_mem_m=37.28),
    "PhysNet": dict(params_m=0.77, macs_m=438.24, kfps=11.80, peak_mem_m=11.43),
    "TS-CAN": dict(params_m=1.98, macs_m=744.45, kfps=5.21, peak_mem_m=38.91),
    "PhysFormer": dict(params_m=7.38, macs_m=316.29, kfps=8.50, peak_mem_m=28.63),
    "EfficientPhys": dict(params_m=1.91, macs_m=373.72, kfps=8.42, peak_mem_m=26.68),
    "RhythmFormer": dict(params_m=3.25, macs_m=240.55, kfps=6.30, peak_mem_m=29.06),
    "RhythmMamba": dict(params_m=1.07, macs_m=80.90, kfps=20.09, peak_mem_m=6.66),
    "LQ-rPPG": dict(params_m=0.13, macs_m=57.09, kfps=None, peak_mem_m=None),
}
#: The abstract's claims, LQ-rPPG against (most likely) RhythmMamba (method.md §7).
COST_CLAIMS = {"params": -0.88, "macs": -0.29, "throughput": +1.91}

#: method -> dataset -> {MAE, MAPE}
UNSUPERVISED: dict[str, dict[str, dict[str, float]]] = {
    "GREEN": {"PURE": dict(MAE=10.09, MAPE=10.28), "UBFC-rPPG": dict(MAE=19.81, MAPE=18.78),
              "UBFC-Phys": dict(MAE=13.55, MAPE=16.01), "MMPD": dict(MAE=21.68, MAPE=24.39)},
    "ICA": {"PURE": dict(MAE=4.77, MAPE=4.47), "UBFC-rPPG": dict(MAE=14.70, MAPE=14.34),
            "UBFC-Phys": dict(MAE=10.03, MAPE=11.85), "MMPD": dict(MAE=18.60, MAPE=20.88)},
    "CHROM": {"PURE": dict(MAE=5.77, MAPE=11.52), "UBFC-rPPG": dict(MAE=3.98, MAPE=3.78),
              "UBFC-Phys": dict(MAE=4.49, MAPE=6.00), "MMPD": dict(MAE=13.66, MAPE=15.99)},
    "LGI": {"PURE": dict(MAE=4.61, MAPE=4.96), "UBFC-rPPG": dict(MAE=15.80, MAPE=14.70),
            "UBFC-Phys": dict(MAE=6.27, MAPE=7.83), "MMPD": dict(MAE=17.08, MAPE=18.98)},
    "PBV": {"PURE": dict(MAE=3.91, MAPE=4.82), "UBFC-rPPG": dict(MAE=15.90, MAPE=15.17),
            "UBFC-Phys": dict(MAE=12.34, MAPE=14.63), "MMPD": dict(MAE=17.95, MAPE=20.18)},
    "POS": {"PURE": dict(MAE=3.67, MAPE=7.25), "UBFC-rPPG": dict(MAE=4.00, MAPE=3.86),
            "UBFC-Phys": dict(MAE=4.51, MAPE=6.12), "MMPD": dict(MAE=12.36, MAPE=14.43)},
}


def quoted_rows(kind: str) -> list[dict[str, object]]:
    """The quoted numbers of a table kind as long rows (method, dataset/train/test, metric, value, source)."""
    rows: list[dict[str, object]] = []
    if kind == "intra":
        for method, by_ds in INTRA.items():
            for ds, values in by_ds.items():
                rows += [dict(model=method, dataset=ds, metric=m, value=v, source=INTRA_SOURCE) for m, v in values.items()]
    elif kind == "cross":
        for method, by_pair in CROSS.items():
            for (train, test), values in by_pair.items():
                rows += [dict(model=method, train=train, test=test, metric=m, value=v, source=CROSS_SOURCE)
                         for m, v in values.items()]
    elif kind == "unsupervised":
        for method, by_ds in UNSUPERVISED.items():
            for ds, values in by_ds.items():
                rows += [dict(method=method, dataset=ds, metric=m, value=v, source=UNSUPERVISED_SOURCE)
                         for m, v in values.items()]
    elif kind == "cost":
        for method, values in COST.items():
            rows += [dict(model=method, metric=m, value=v, source=COST_SOURCE) for m, v in values.items() if v is not None]
    else:
        raise ValueError(f"no quoted rows for table kind {kind!r}")
    return rows
