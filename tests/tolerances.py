"""How close two fp32 answers of the same text must be when they were computed in different
batch shapes (alone vs batched, split vs whole, HTTP vs gRPC, ranked vs top-1): the float sums are
grouped differently, so the last bits differ by CPU (1.26e-6 relative seen on a Xeon with AVX-512
and AMX, where pytest.approx's default 1e-6 failed every run). One constant for every such
comparison, the one the parity tests use."""

FP32_SCORE_TOLERANCE = 1e-4  # absolute, on scores in 0..1 (and on logits of these small models)
