"""Finding what to redact in a text, and redacting it: entity spans from rules (``rules``) and from a
served token-classification model, merged (``spans``) and applied in a chosen style (``styles``)."""
