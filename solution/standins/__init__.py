"""Stand-in models: the five served models' classes, label sets, config quirks and tokenizer
families, built offline from a generated corpus.

They exist because no machine here reaches the model hub. ``tiny`` stand-ins are trained to
follow the keyword and language rules of ``rules.py`` (so their answers differ from text to text
and comparisons of answers can fail); ``base`` ones have the real dimensions and random weights.
Either proves the serving path, never the real models' accuracy.
"""
