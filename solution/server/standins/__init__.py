"""Stand-in models: the five served models' classes, label sets, config quirks and tokenizer
families, with random weights, built offline from a generated corpus.

They exist because no machine here reaches the model hub. Their outputs are random: they prove
the serving path (loading, batching, merging, the API contract), never accuracy.
"""
