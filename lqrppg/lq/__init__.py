"""Stage 1 of LQ-rPPG: label quantization (``reference/method.md`` §1-2).

- :mod:`lqrppg.lq.labels` turns stored frame-aligned labels into y_bpf chunks;
- :mod:`lqrppg.lq.quantizer` is the n-bit quantizer (encoder + EMA scalar codebook);
- :mod:`lqrppg.lq.fit` trains one quantizer per bit depth and selects epochs on validation;
- :mod:`lqrppg.lq.pseudo_labels` applies frozen quantizers and stores the pseudo labels.
"""
